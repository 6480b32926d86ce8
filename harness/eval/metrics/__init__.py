"""Code-quality metrics for bash programs (docs/metrics.md).

quality.py    quality_metrics(): everything below, as report metrics, per-sample records and info
syntax.py     syntax accuracy by `bash -n` and by bashlex (ok / syntax_error / unsupported / parser_error)
shellcheck.py ShellCheck findings, clean rate, findings by severity and code
bleu.py       BLEU through sacrebleu on bash-aware tokens, with its signature
codebleu.py   CodeBLEU for bash: n-gram, keyword-weighted n-gram, AST subtree match, def-use data flow
bash_tokens.py, bash_ast.py, bash_dataflow.py   the tokenizer, subtrees and data flow these share
"""
