"""`harness <command>`: a thin dispatcher. Each command is a module in harness/commands with
`add_arguments(parser)` and `run(args) -> int` (the mlx-lm layout: one module per command)."""
from __future__ import annotations

import argparse
import errno
import importlib
import sys

COMMANDS = {
    "configs": "every model preset with its exact and seed-claimed parameter counts",
    "data": "harvest and tokenize the bash and language corpora into packed token files",
    "train": "pretrain or fine-tune the reference model",
    "generate": "generate text from a checkpoint, an mlx-lm model folder or an OpenAI-compatible server",
    "eval": "score bash completions (pass@k in a sandbox, syntax, shellcheck, BLEU, CodeBLEU)",
    "bench": "benchmark one preset on this machine and write a report",
    "claims": "audit the seed's published claims",
    "compare": "compare two reports; exit 1 on a regression",
    "scaling": "data-parallel scaling efficiency and loss agreement from 1- and N-process train reports",
    "publish": "turn reports into markdown tables and plots",
    "demo": "the whole pipeline on this machine in minutes",
    "export": "write a checkpoint as a Hugging Face GPT-2 folder (transformers, mlx-lm)",
    "tasks": "export the task suite's prompts for generating elsewhere",
    "mutate": "mutation testing of a task suite's tests; writes and checks the scores shipped with it",
}


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="harness", description=__doc__.split("\n")[0])
    p.add_argument("--version", action="version", version=f"harness {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_ in COMMANDS.items():
        sub.add_parser(name, help=help_, add_help=False)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        p = _parser()
        if not argv:
            p.print_help()
            return 2
        p.parse_args(argv)  # prints usage and exits 2 for an unknown command; handles --help/--version
        return 2
    # Preload OpenBLAS before anything imports mlx (re-execs this process once; see reference/runtime.py).
    from reference.runtime import ensure_fast_blas

    ensure_fast_blas()
    from reference.errors import InputError

    from .errors import CheckFailed, UsageError

    name, rest = argv[0], argv[1:]
    mod = importlib.import_module(f"harness.commands.{name}")
    p = argparse.ArgumentParser(prog=f"harness {name}", description=COMMANDS[name])
    mod.add_arguments(p)
    args = p.parse_args(rest)
    sys.stdout = _Stdout(sys.stdout)
    try:
        code = int(mod.run(args) or 0)
        sys.stdout.flush()
        return code
    except StdoutError as e:
        _silence_stdout()
        if e.errno == errno.EPIPE:  # the reader stopped early (`| head`): quiet, as a shell tool
            return 128 + 13
        print(f"harness {name}: error: cannot write to standard output ({e}); redirect it to a file or a pipe "
              f"with room", file=sys.stderr)
        return 2
    except UsageError as e:
        print(f"harness {name}: error: {e}", file=sys.stderr)
        return 2
    except CheckFailed as e:
        print(f"harness {name}: check failed: {e}", file=sys.stderr)
        return 1
    except InputError as e:
        print(f"harness {name}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"harness {name}: interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # the machine's answer to a path or device (disk full, permissions)
        where = f" ({e.filename})" if e.filename else ""
        print(f"harness {name}: error: {e.strerror or e}{where}; check the path, its permissions and free space",
              file=sys.stderr)
        return 2
    finally:
        if isinstance(sys.stdout, _Stdout):
            sys.stdout = sys.stdout.stream


class StdoutError(OSError):
    """Standard output cannot be written (a full device, a closed pipe)."""


class _Stdout:
    """sys.stdout, with its write errors raised as StdoutError so that the CLI can tell them from others."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text):
        try:
            return self.stream.write(text)
        except OSError as e:
            raise StdoutError(e.errno, e.strerror) from None

    def flush(self):
        try:
            self.stream.flush()
        except OSError as e:
            raise StdoutError(e.errno, e.strerror) from None

    def __getattr__(self, name):
        return getattr(self.stream, name)


def _silence_stdout() -> None:
    """Point file descriptor 1 at /dev/null, so that the interpreter's last flush of what is still buffered
    does not fail a second time."""
    import os

    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, 1)
        os.close(fd)
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
