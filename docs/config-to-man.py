#!/usr/bin/env python3
"""Write hato.conf(5) from docs/config.md.

    docs/config-to-man.py [--check] [CONFIG_MD [HATO_CONF_5]]

docs/config.md is the one place where each key's default, example and
meaning is written; docs/hato.conf.5 is this script's rendering of it, so
the two cannot say different things.  Run it after editing config.md and
commit both; --check (used by the install test) exits 1 when the page
differs from what config.md gives.

Only the Markdown config.md uses is understood: headings, paragraphs,
'-' and '1.' lists, fenced code, pipe tables, `code`, **bold** and links.
Anything else is an error, so a new construct is noticed rather than
rendered wrongly.
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

HEAD = r""".\" hato.conf(5): generated from docs/config.md by docs/config-to-man.py.
.\" Do not edit; edit docs/config.md and run docs/config-to-man.py.
.TH HATO.CONF 5 "2026" "hato 0.3" "File Formats Manual"
.\" Key names, addresses and paths must not be hyphenated.
.nh
.SH NAME
hato.conf \- configuration of hato, the sendmail-compatible SMTP submission client
.SH SYNOPSIS
.B /etc/hato.conf
.br
.B hato \-C
.I file
.SH DESCRIPTION
"""

TAIL = r""".SH FILES
.TP
.B /etc/hato.conf
The configuration file
.RB ( \-C
names another).
.TP
.B /etc/aliases
The default
.BR alias_maps .
.TP
.B /var/spool/hato
The default
.BR queue_directory .
.TP
.B /var/lib/hato
The default
.B data_directory
for root.
.SH SEE ALSO
.BR hato (8),
.BR libhato (3),
.BR aliases (5),
.BR postconf (5);
the pages in
.I share/doc/hato
under the installation prefix
.RI ( docs/
in the source).
"""


def die(lineno, msg):
    sys.exit(f"config-to-man: docs/config.md:{lineno}: {msg}")


def escape(text):
    """Escape plain text for roff (no font changes yet)."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\e")
        elif ord(ch) > 127:
            # groff reads its input as Latin-1 without preconv: name each
            # character so the page renders the same under man and groff.
            named = {"\u2014": "\\(em", "\u2013": "\\(en", "\u2026": "\\&...",
                     "\u2019": "\\(cq", "\u2018": "\\(oq", "\u201c": "\\(lq",
                     "\u201d": "\\(rq", "\u2192": "\\(->"}
            out.append(named.get(ch, "\\[u%04X]" % ord(ch)))
        else:
            out.append(ch)
    return "".join(out)


def inline(text):
    """Markdown inline markup to roff; text may span lines."""
    out = []
    pos = 0
    pattern = re.compile(r"`([^`]+)`|\*\*(.+?)\*\*|\[([^\]]+)\]\(([^)]+)\)", re.S)
    for m in pattern.finditer(text):
        out.append(escape(text[pos:m.start()]))
        if m.group(1) is not None:
            code = escape(m.group(1)).replace("-", "\\-")
            if len(m.group(1)) > 40:
                # a long pin or command: let the line break after a colon
                code = code.replace(":", ":\\:")
            out.append("\\fB" + code + "\\fR")
        elif m.group(2) is not None:
            out.append("\\fB" + inline(m.group(2)) + "\\fR")
        else:
            label, target = m.group(3), m.group(4)
            target = target.split("#")[0]
            out.append("\\fI" + escape(label) + "\\fR")
            if target and target != label:
                out.append(" (" + escape(target) + ")")
        pos = m.end()
    out.append(escape(text[pos:]))
    return "".join(out)


def lines_out(text):
    """Roff source lines; a line may not start with '.' or an apostrophe."""
    res = []
    for line in text.split("\n"):
        line = line.strip()
        if line.startswith((".", "'")):
            line = "\\&" + line
        if line.endswith(("e.g.", "i.e.")):
            line += "\\&"  # not a sentence end: no double space after it
        res.append(line)
    return res


def split_row(line, lineno):
    if not (line.startswith("|") and line.endswith("|")):
        die(lineno, "table row must start and end with '|'")
    cells, cur, in_code = [], [], False
    for ch in line[1:-1]:
        if ch == "`":
            in_code = not in_code
        if ch == "|" and not in_code:
            cells.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    cells.append("".join(cur).strip())
    return cells


def table(block):
    (lineno, header), (_, rule) = block[0], block[1]
    head = split_row(header, lineno)
    if not re.fullmatch(r"\|(-+\|)+", rule.replace(" ", "")):
        die(lineno + 1, "table header must be followed by |---|")
    # .ad l: a long pin or path in a cell cannot be spread to the margin
    out = [".PP", ".ad l", ".PD 0"]
    for n, row in block[2:]:
        cells = split_row(row, n)
        if len(cells) != len(head):
            die(n, "table row has %d cells, header %d" % (len(cells), len(head)))
        if any(head):
            out += [".TP", inline(cells[0])]
            # A keyed table (the timeouts): "Default: 30s; Covers: ...".
            out += lines_out("; ".join(
                "%s: %s" % (escape(h), inline(c)) for h, c in zip(head[1:], cells[1:])))
        else:
            # A key's own table: Default, Example, Since.
            out += [".TP 10", "\\fI" + inline(cells[0]) + "\\fR"]
            out += lines_out(inline(cells[1]))
    out += [".PD", ".ad b", ".PP"]
    return out


def list_block(block, numbered):
    out, item = [], []
    marker = re.compile(r"(\d+)\. " if numbered else r"- ")

    def flush():
        if item:
            out.extend(lines_out(inline("\n".join(item))))

    for n, line in block:
        m = marker.match(line)
        if m:
            flush()
            item = [line[m.end():]]
            out.append(".IP %s 4" % (m.group(1) + "." if numbered else "\\(bu"))
        elif line.startswith("  "):
            item.append(line)
        else:
            die(n, "list item continuation must be indented")
    flush()
    out.append(".PP")
    return out


def render(md):
    src = md.split("\n")
    out = []
    i = 0
    seen_title = False
    while i < len(src):
        line = src[i]
        n = i + 1
        if not line.strip():
            i += 1
            continue
        if line.startswith("```"):
            j = i + 1
            code = []
            while j < len(src) and not src[j].startswith("```"):
                code.append(src[j])
                j += 1
            if j == len(src):
                die(n, "unterminated code block")
            out += [".PP", ".RS 4", ".nf"]
            for c in code:
                c = escape(c).replace("-", "\\-")
                out.append("\\&" + c if c.startswith((".", "'")) else c)
            out += [".fi", ".RE", ".PP"]
            i = j + 1
            continue
        # a block: consecutive non-blank lines, up to a fence
        block = []
        while i < len(src) and src[i].strip() and not src[i].startswith("```"):
            block.append((i + 1, src[i]))
            i += 1
        first = block[0][1]
        if first.startswith("#"):
            if len(block) != 1:
                die(n, "a heading must stand alone")
            level = len(first) - len(first.lstrip("#"))
            title = first[level:].strip()
            if level == 1:
                if seen_title:
                    die(n, "one '#' title only")
                seen_title = True
            elif level == 2:
                out.append(".SH " + escape(title.upper()))
            elif level == 3:
                out.append(".SS " + inline(title).replace("\\fB", "").replace("\\fR", ""))
            else:
                die(n, "heading level %d not supported" % level)
        elif first.startswith("|"):
            out += table(block)
        elif first.startswith("- "):
            out += list_block(block, numbered=False)
        elif re.match(r"1\. ", first):
            out += list_block(block, numbered=True)
        else:
            out.append(".PP")
            out += lines_out(inline("\n".join(l for _, l in block)))
    # tidy: no .PP right before a heading or another .PP
    tidy = []
    for line in out:
        if line.startswith((".SH", ".SS", ".PP", ".IP", ".TP")) and tidy and tidy[-1] == ".PP":
            tidy.pop()
        tidy.append(line)
    if tidy and tidy[0] == ".PP":
        tidy.pop(0)
    while tidy and tidy[-1] == ".PP":
        tidy.pop()
    return HEAD + "\n".join(tidy) + "\n" + TAIL


def main(argv):
    check = "--check" in argv
    args = [a for a in argv if a != "--check"]
    md_path = args[0] if args else os.path.join(HERE, "config.md")
    man_path = args[1] if len(args) > 1 else os.path.join(HERE, "hato.conf.5")
    with open(md_path, encoding="utf-8") as f:
        page = render(f.read())
    if check:
        try:
            with open(man_path, encoding="utf-8") as f:
                current = f.read()
        except FileNotFoundError:
            current = None
        if current != page:
            print(f"config-to-man: {man_path} does not match {md_path}; "
                  "run docs/config-to-man.py and commit both", file=sys.stderr)
            return 1
        return 0
    with open(man_path, "w", encoding="utf-8") as f:
        f.write(page)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
