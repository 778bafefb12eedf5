#!/usr/bin/env python3
"""Checks crate READMEs render on crates.io as they do in rustdoc.

crates.io renders a README as plain Markdown: rustdoc's hidden lines
(`# ` inside Rust code blocks) show up, intra-doc links (`[`Name`]` with no
URL) stay unresolved brackets, and relative links point nowhere. Prints each
problem as FILE:LINE: what, and exits 1 if there is any.

    python3 scripts/readme-check.py crates/*/README.md
"""
import re
import sys

problems = []
for path in sys.argv[1:]:
    in_block, is_rust = False, False
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    # Reference-style link definitions make [`Name`] a real link.
    defined = {m.group(1).lower() for l in lines for m in [re.match(r"^\[([^\]]+)\]:\s*\S+", l)] if m}
    for n, line in enumerate(lines, 1):
        fence = re.match(r"^\s*```(.*)$", line)
        if fence:
            if in_block:
                in_block = False
            else:
                lang = fence.group(1).strip().split(",")[0]
                in_block = True
                is_rust = lang in ("", "rust", "no_run", "ignore", "should_panic", "compile_fail")
            continue
        if in_block and is_rust and (line.strip() == "#" or re.match(r"^\s*# ", line)):
            problems.append(f"{path}:{n}: rustdoc hidden line shows on crates.io: {line.strip()}")
        if in_block:
            continue
        for m in re.finditer(r"\[(`[^`\]]+`|[^\]]+)\](?![(\[:])", line):
            if m.group(1).lower() not in defined and "`" in m.group(1):
                problems.append(f"{path}:{n}: intra-doc link without URL: {m.group(0)}")
        for m in re.finditer(r"\]\(([^)]+)\)", line):
            target = m.group(1)
            if not re.match(r"^(https?://|mailto:|#)", target):
                problems.append(f"{path}:{n}: relative link breaks on crates.io: {target}")
for p in problems:
    print(p)
sys.exit(1 if problems else 0)
