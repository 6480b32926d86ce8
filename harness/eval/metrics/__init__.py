"""Code-quality metrics for bash programs (docs/metrics.md).

quality.py    quality_metrics(): everything below, as report metrics, per-sample records and info
syntax.py     syntax accuracy by `bash -n` and by bashlex (ok / syntax_error / unsupported / parser_error)
shellcheck.py ShellCheck findings, clean rate, findings by severity and code
bleu.py       BLEU through sacrebleu on bash-aware tokens, with its signature
codebleu.py   CodeBLEU for bash: n-gram, keyword-weighted n-gram, AST subtree match, def-use data flow
bash_tokens.py  the bash tokenizer BLEU and the syntax report share (bash_lexer.py: its scanner)
bash_tree.py    tree-sitter-bash trees and their subtrees (CodeBLEU's syntax match)
bash_dataflow.py def-use edges read from those trees (CodeBLEU's data-flow match)
"""
