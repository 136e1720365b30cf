#!/usr/bin/python3
"""Structure checker for Prometheus text 0.0.4 and OpenMetrics 1.0.0 bodies.

Checks what `promtool check metrics` and prometheus_client's OpenMetrics
parser do not (or not in both formats):
  - the body is valid UTF-8, lines end with LF, no CR anywhere;
  - every line parses (metadata, samples, label escaping per format);
  - HELP and TYPE at most once per family, both before the family's samples;
  - families are not interleaved, and neither are the series of a histogram;
  - no duplicate series (same sample name and label set), no two families
    owning the same name (e.g. counter foo_total and gauge foo in OpenMetrics);
  - histograms: le strictly increasing and ending with +Inf, bucket counts
    cumulative (non-decreasing) integers, +Inf == _count, _sum and _count
    present for every series (OpenMetrics: both or neither, and no _sum with
    negative thresholds or a negative value);
  - counters' values are non-negative and not NaN;
  - OpenMetrics ends with exactly one "# EOF" line (then at most one LF);
  - exemplars (" # {labels} value [timestamp]" after a sample): OpenMetrics
    only, on counter _total and histogram/gaugehistogram _bucket samples
    only, label names valid and unique, escapes valid, names plus values at
    most 128 characters, value a number (not above the bucket's le),
    timestamp a finite number.

Usage: check_exposition.py --format text|openmetrics FILE|-
Exit 0 with a one-line summary when valid; exit 1 with one message per
problem (line numbers are 1-based), exit 2 on usage errors.
Standard library only (runs under Debian's /usr/bin/python3).
"""

import argparse
import math
import re
import sys

NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# OpenMetrics ABNF realnumber, plus the case-insensitive inf/infinity/nan forms.
OM_REAL_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|[0-9]*\.[0-9]+(?:[eE][+-]?[0-9]+)?)")
OM_SPECIAL_RE = re.compile(r"(?i)[+-]?(?:inf|infinity)|nan")
# Go's strconv.ParseFloat accepts more (hex floats, underscores are rejected
# by the text parser); keep to decimal forms plus Inf/NaN spellings.
TEXT_REAL_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
TEXT_SPECIAL_RE = re.compile(r"(?i)[+-]?(?:inf|infinity)|nan")

TYPES = {
    "text": {"counter", "gauge", "histogram", "summary", "untyped"},
    "openmetrics": {"counter", "gauge", "histogram", "gaugehistogram", "stateset", "info",
                    "summary", "unknown"},
}


def suffixes(fmt, typ):
    """Sample-name suffixes a family of this type owns."""
    if typ == "histogram":
        return ("_bucket", "_sum", "_count", "_created") if fmt == "openmetrics" else ("_bucket", "_sum", "_count")
    if typ == "gaugehistogram":
        return ("_bucket", "_gsum", "_gcount")
    if typ == "summary":
        return ("", "_sum", "_count", "_created") if fmt == "openmetrics" else ("", "_sum", "_count")
    if typ == "counter":
        return ("_total", "_created") if fmt == "openmetrics" else ("",)
    if typ == "info":
        return ("_info",)
    return ("",)


class Problems(Exception):
    pass


class Checker:
    def __init__(self, fmt):
        self.fmt = fmt
        self.problems = []
        self.families = {}  # name -> dict(type, help, samples, closed)
        self.order = []  # family names in order of appearance
        self.current = None
        self.series = set()
        self.claimed = {}  # sample/family name -> family that owns it
        self.nsamples = 0
        self.nhist_series = 0

    def err(self, lineno, msg):
        self.problems.append("line %d: %s" % (lineno, msg) if lineno else msg)

    # ------------------------------------------------------------ lexing
    def unescape(self, s, i, lineno, what, quote_ends):
        """Reads an escaped string starting at s[i]; stops at an unescaped '"'
        when quote_ends, else at end of string. Returns (value, index after)."""
        out = []
        n = len(s)
        while i < n:
            c = s[i]
            if c == "\\":
                if i + 1 >= n:
                    self.err(lineno, "%s ends with a lone backslash" % what)
                    return "".join(out), n
                e = s[i + 1]
                if e == "\\":
                    out.append("\\")
                elif e == "n":
                    out.append("\n")
                elif e == '"' and (quote_ends or self.fmt == "openmetrics"):
                    out.append('"')
                else:
                    self.err(lineno, "%s has undefined escape sequence \\%s at column %d" % (what, e, i + 1))
                    out.append(e)
                i += 2
                continue
            if c == '"' and quote_ends:
                return "".join(out), i + 1
            if c == '"' and self.fmt == "openmetrics":
                self.err(lineno, "%s has an unescaped double quote at column %d" % (what, i + 1))
            out.append(c)
            i += 1
        if quote_ends:
            self.err(lineno, "%s: unterminated quoted string" % what)
        return "".join(out), n

    def parse_value(self, tok, lineno, what):
        if self.fmt == "openmetrics":
            ok = OM_REAL_RE.fullmatch(tok) or OM_SPECIAL_RE.fullmatch(tok)
        else:
            ok = TEXT_REAL_RE.fullmatch(tok) or TEXT_SPECIAL_RE.fullmatch(tok)
        if not ok:
            self.err(lineno, "%s %r is not a valid number" % (what, tok))
            return None
        return float(tok)

    def parse_sample(self, line, lineno):
        m = NAME_RE.match(line)
        if not m:
            self.err(lineno, "sample does not start with a metric name: %r" % line[:80])
            return None
        name = m.group(0)
        i = m.end()
        labels = {}
        order = []
        if i < len(line) and line[i] == "{":
            i += 1
            first = True
            while True:
                if i < len(line) and line[i] == "}":
                    i += 1
                    break
                if not first:
                    if i >= len(line) or line[i] != ",":
                        self.err(lineno, "expected ',' or '}' in labels at column %d" % (i + 1))
                        return None
                    i += 1
                    if self.fmt == "text" and i < len(line) and line[i] == "}":
                        i += 1  # text 0.0.4 tolerates a trailing comma
                        break
                first = False
                lm = LABEL_RE.match(line, i)
                if not lm:
                    self.err(lineno, "bad label name at column %d" % (i + 1))
                    return None
                lname = lm.group(0)
                i = lm.end()
                if line[i:i + 2] != '="':
                    self.err(lineno, "expected '=\"' after label %s" % lname)
                    return None
                val, i = self.unescape(line, i + 2, lineno, "label %s value" % lname, True)
                if lname in labels:
                    self.err(lineno, "duplicate label name %s" % lname)
                if lname.startswith("__"):
                    self.err(lineno, "reserved label name %s" % lname)
                labels[lname] = val
                order.append(lname)
        if i >= len(line) or line[i] != " ":
            self.err(lineno, "expected a single space before the value at column %d" % (i + 1))
            return None
        rest = line[i + 1:]
        exemplar = None
        if self.fmt == "openmetrics" and " # " in rest:
            rest, ex_text = rest.split(" # ", 1)
            exemplar = self.parse_exemplar(ex_text, lineno)
            if exemplar is None:
                return None
        toks = rest.split(" ")
        if len(toks) > 2 or any(t == "" for t in toks):
            self.err(lineno, "expected 'value [timestamp]' after the labels, got %r" % rest[:80])
            return None
        value = self.parse_value(toks[0], lineno, "value")
        if value is None:
            return None
        if len(toks) == 2 and self.parse_value(toks[1], lineno, "timestamp") is None:
            return None
        return name, labels, value, toks[0], exemplar

    def parse_exemplar(self, text, lineno):
        """'{labels} value [timestamp]' after ' # '; returns (labels, value)
        or None after recording the problem."""
        if not text.startswith("{"):
            self.err(lineno, "exemplar does not start with '{': %r" % text[:80])
            return None
        i, labels, first = 1, {}, True
        while True:
            if i < len(text) and text[i] == "}":
                i += 1
                break
            if not first:
                if i >= len(text) or text[i] != ",":
                    self.err(lineno, "expected ',' or '}' in the exemplar's labels at column %d" % (i + 1))
                    return None
                i += 1
            first = False
            lm = LABEL_RE.match(text, i)
            if not lm:
                self.err(lineno, "bad exemplar label name at %r" % text[i:i + 40])
                return None
            lname = lm.group(0)
            i = lm.end()
            if text[i:i + 2] != '="':
                self.err(lineno, "expected '=\"' after exemplar label %s" % lname)
                return None
            n_problems = len(self.problems)
            val, i = self.unescape(text, i + 2, lineno, "exemplar label %s value" % lname, True)
            if len(self.problems) > n_problems:
                return None
            if lname in labels:
                self.err(lineno, "duplicate exemplar label %s" % lname)
            labels[lname] = val
        chars = sum(len(k) + len(v) for k, v in labels.items())
        if chars > 128:
            self.err(lineno, "exemplar label set has %d characters, more than OpenMetrics' 128" % chars)
        toks = text[i:].split(" ")
        if len(toks) not in (2, 3) or toks[0] != "" or any(t == "" for t in toks[1:]):
            self.err(lineno, "expected ' value [timestamp]' after the exemplar's labels, got %r" % text[i:i + 80])
            return None
        value = self.parse_value(toks[1], lineno, "exemplar value")
        if value is None:
            return None
        if len(toks) == 3:
            ts = self.parse_value(toks[2], lineno, "exemplar timestamp")
            if ts is None:
                return None
            if math.isnan(ts) or math.isinf(ts):
                self.err(lineno, "exemplar timestamp %s is not finite" % toks[2])
        return labels, value

    # ----------------------------------------------------------- families
    def family_of(self, sample_name):
        """The declared family a sample name belongs to, or None."""
        fam = self.families.get(self.current) if self.current else None
        if fam and fam["type"]:
            for suf in suffixes(self.fmt, fam["type"]):
                if sample_name == self.current + suf:
                    return self.current
        elif fam and sample_name == self.current:
            return self.current
        return None

    def enter(self, name, lineno):
        if self.current == name:
            return self.families[name]
        if name in self.families:
            self.err(lineno, "family %s appears again after family %s started (families interleaved)"
                     % (name, self.current))
            fam = self.families[name]
        else:
            fam = {"type": None, "help": None, "samples": [], "line": lineno}
            self.families[name] = fam
            self.order.append(name)
        if self.current:
            self.close(self.current)
        self.current = name
        return fam

    def metadata(self, line, lineno):
        parts = line.split(" ", 3)
        if len(parts) < 3 or parts[0] != "#":
            return False
        kind = parts[1]
        if kind not in ("HELP", "TYPE", "UNIT"):
            return False
        name = parts[2]
        if not NAME_RE.fullmatch(name):
            self.err(lineno, "%s line with invalid metric name %r" % (kind, name))
            return True
        if kind == "UNIT" and self.fmt == "text":
            return False  # an ordinary comment in text 0.0.4
        fam = self.enter(name, lineno)
        if fam["samples"]:
            self.err(lineno, "%s for %s after its samples" % (kind, name))
        arg = parts[3] if len(parts) == 4 else None
        if kind == "TYPE":
            if fam["type"] is not None:
                self.err(lineno, "second TYPE line for %s" % name)
            if arg not in TYPES[self.fmt]:
                self.err(lineno, "TYPE %s has unknown type %r" % (name, arg))
            fam["type"] = arg
        elif kind == "HELP":
            if fam["help"] is not None:
                self.err(lineno, "second HELP line for %s" % name)
            if arg is None:
                arg = ""
                if self.fmt == "openmetrics":
                    self.err(lineno, "HELP line for %s lacks the space before the text" % name)
            fam["help"] = self.unescape(arg, 0, lineno, "HELP text of %s" % name, False)[0]
        else:
            if fam.get("unit") is not None:
                self.err(lineno, "second UNIT line for %s" % name)
            fam["unit"] = arg or ""
            if arg and not name.endswith("_" + arg):
                self.err(lineno, "UNIT %s is not a suffix of %s" % (arg, name))
        return True

    def sample(self, line, lineno):
        parsed = self.parse_sample(line, lineno)
        if parsed is None:
            return
        name, labels, value, raw, exemplar = parsed
        self.nsamples += 1
        famname = self.family_of(name)
        if famname is None:
            # A sample without metadata starts an untyped/unknown family; it
            # must not collide with a declared family's names.
            for other, f in self.families.items():
                for suf in suffixes(self.fmt, f["type"] or "untyped"):
                    if name == other + suf and other != self.current:
                        self.err(lineno, "sample %s belongs to family %s, which already ended "
                                 "(families interleaved)" % (name, other))
            famname = name
            fam = self.enter(name, lineno)
        fam = self.families[famname]
        key = (name, tuple(sorted(labels.items())))
        if key in self.series:
            self.err(lineno, "duplicate series %s%s" % (name, fmt_labels(labels)))
        self.series.add(key)
        typ = fam["type"]
        suffix = name[len(famname):]
        # le is an ordinary label outside histograms; inside one it belongs
        # to the buckets alone.
        if "le" in labels and typ in ("histogram", "gaugehistogram") and suffix != "_bucket":
            self.err(lineno, "label le on %s, which is not a histogram bucket" % name)
        if typ == "counter" or suffix in ("_bucket", "_count", "_gcount") or \
                (typ == "histogram" and suffix == "_sum"):
            if math.isnan(value):
                self.err(lineno, "%s is NaN but counter-like" % name)
        if typ == "counter" or suffix in ("_bucket", "_count", "_gcount"):
            if value < 0:
                self.err(lineno, "%s is negative (%s) but counter-like" % (name, raw))
        if self.fmt == "openmetrics" and typ == "histogram" and suffix == "_sum" and value < 0:
            self.err(lineno, "%s is negative (%s); OpenMetrics histogram sums are counters" % (name, raw))
        if suffix in ("_bucket", "_count", "_gcount") and typ in ("histogram", "gaugehistogram"):
            if not math.isnan(value) and not math.isinf(value) and value != int(value):
                self.err(lineno, "%s value %s is not an integer" % (name, raw))
        if exemplar is not None:
            if not ((typ == "counter" and suffix == "_total") or
                    (typ in ("histogram", "gaugehistogram") and suffix == "_bucket")):
                self.err(lineno, "exemplar on %s: only counter _total and histogram _bucket samples may have one" % name)
            elif suffix == "_bucket" and "le" in labels:
                try:
                    le = float(labels["le"])
                except ValueError:
                    le = None  # reported with the histogram's checks
                ev = exemplar[1]
                if le is not None and not math.isinf(le) and ev > le and ev - le > abs(le) * 1e-15:
                    self.err(lineno, "exemplar value %r above its bucket le=%s" % (ev, labels["le"]))
        fam["samples"].append((lineno, name, labels, value, suffix))

    def close(self, name):
        fam = self.families[name]
        if fam.get("closed"):
            return
        fam["closed"] = True
        # Names a family owns (OpenMetrics: also the bare family name); two
        # families owning one name are ambiguous to every ingestor.
        owned = {name + suf for suf in suffixes(self.fmt, fam["type"] or "untyped")}
        if self.fmt == "openmetrics":
            owned.add(name)
        for n in sorted(owned):
            other = self.claimed.get(n)
            if other is not None and other != name:
                self.err(fam["line"], "family %s clashes with family %s on the name %s" % (name, other, n))
            self.claimed[n] = name
        if fam["type"] in ("histogram", "gaugehistogram"):
            self.check_histogram(name, fam)

    def check_histogram(self, name, fam):
        count_sfx = "_gcount" if fam["type"] == "gaugehistogram" else "_count"
        sum_sfx = "_gsum" if fam["type"] == "gaugehistogram" else "_sum"
        groups = {}
        seen_order = []
        last = None
        for lineno, sname, labels, value, suffix in fam["samples"]:
            g = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
            if g != last:
                if g in groups:
                    self.err(lineno, "histogram %s series %s is interleaved with another series"
                             % (name, fmt_labels(dict(g))))
                else:
                    groups[g] = {"buckets": [], "count": None, "sum": None, "line": lineno}
                    seen_order.append(g)
                last = g
            st = groups[g]
            if suffix == "_bucket":
                if "le" not in labels:
                    self.err(lineno, "%s without an le label" % sname)
                    continue
                le_raw = labels["le"]
                le = self.parse_value(le_raw, lineno, "le")
                if le is None:
                    continue
                if math.isnan(le):
                    self.err(lineno, "%s has le=NaN" % sname)
                    continue
                if st["count"] is not None or st["sum"] is not None:
                    self.err(lineno, "%s bucket after _sum/_count of the same series" % sname)
                st["buckets"].append((lineno, le, le_raw, value))
            elif suffix == count_sfx:
                st["count"] = (lineno, value)
            elif suffix == sum_sfx:
                st["sum"] = (lineno, value)
        for g in seen_order:
            st = groups[g]
            where = "histogram %s%s" % (name, fmt_labels(dict(g)))
            b = st["buckets"]
            if not b:
                self.err(st["line"], "%s has no buckets" % where)
                continue
            for (l0, le0, r0, v0), (l1, le1, r1, v1) in zip(b, b[1:]):
                if not le1 > le0:
                    self.err(l1, "%s: le %s does not increase after le %s" % (where, r1, r0))
                if v1 < v0:
                    self.err(l1, "%s: bucket le=%s (%g) < bucket le=%s (%g): not cumulative"
                             % (where, r1, v1, r0, v0))
            if b[-1][1] != math.inf:
                self.err(b[-1][0], "%s: last bucket is le=%s, not +Inf" % (where, b[-1][2]))
            if self.fmt == "openmetrics" and b[-1][2] != "+Inf" and b[-1][1] == math.inf:
                self.err(b[-1][0], "%s: +Inf bucket spelled %r, canonical is \"+Inf\"" % (where, b[-1][2]))
            negative = any(le < 0 for _, le, _, _ in b)
            # OpenMetrics makes Sum a SHOULD (and forbids it with negative
            # thresholds or a negative value), and the count is the +Inf
            # bucket: a buckets-only series is valid, a lone _sum or _count
            # is not. Text 0.0.4 series always carry both.
            buckets_only = self.fmt == "openmetrics" and st["count"] is None and st["sum"] is None
            if st["count"] is None and not buckets_only:
                self.err(st["line"], "%s has no %s" % (where, count_sfx))
            elif st["count"] is not None and b[-1][1] == math.inf and st["count"][1] != b[-1][3]:
                self.err(st["count"][0], "%s: %s %g != +Inf bucket %g"
                         % (where, count_sfx, st["count"][1], b[-1][3]))
            if st["sum"] is None and not buckets_only:
                self.err(st["line"], "%s has no %s" % (where, sum_sfx))
            elif st["sum"] is not None and self.fmt == "openmetrics" and negative \
                    and fam["type"] == "histogram":
                self.err(st["sum"][0], "%s: _sum with negative bucket thresholds" % where)
            self.nhist_series += 1

    # --------------------------------------------------------------- main
    def run(self, data):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            line = data[:e.start].count(b"\n") + 1
            self.err(line, "invalid UTF-8 at byte offset %d: %r" % (e.start, data[e.start:e.start + 8]))
            text = data.decode("utf-8", errors="replace")
        if "\r" in text:
            self.err(text[:text.index("\r")].count("\n") + 1, "carriage return in body")
        if text.startswith("\ufeff"):
            self.err(1, "byte order mark")
        if not text:
            if self.fmt == "openmetrics":
                self.err(0, "empty body: OpenMetrics needs '# EOF'")
            return
        if not text.endswith("\n") and self.fmt == "text":
            self.err(0, "body does not end with a line feed")
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        eof_line = None
        for idx, line in enumerate(lines, 1):
            if eof_line is not None:
                self.err(idx, "content after '# EOF' (line %d)" % eof_line)
                break
            if self.fmt == "openmetrics" and line == "# EOF":
                eof_line = idx
                continue
            if line == "":
                if self.fmt == "openmetrics":
                    self.err(idx, "blank line")
                continue
            if line.startswith("#"):
                if self.metadata(line, idx):
                    continue
                if self.fmt == "openmetrics":
                    self.err(idx, "comment line that is neither TYPE, HELP, UNIT nor EOF: %r" % line[:80])
                continue
            if line[0] in " \t":
                self.err(idx, "line starts with whitespace")
                continue
            self.sample(line, idx)
        if self.current:
            self.close(self.current)
        if self.fmt == "openmetrics" and eof_line is None:
            self.err(0, "missing '# EOF' line at the end")


def fmt_labels(labels):
    if not labels:
        return ""
    def esc(v):
        return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return "{" + ",".join('%s="%s"' % (k, esc(v)) for k, v in sorted(labels.items())) + "}"


def main(argv):
    ap = argparse.ArgumentParser(description="Check the structure of a Prometheus text 0.0.4 or "
                                 "OpenMetrics 1.0.0 exposition.")
    ap.add_argument("--format", required=True, choices=("text", "openmetrics"))
    ap.add_argument("file", help="exposition body, or - for stdin")
    args = ap.parse_args(argv)
    try:
        if args.file == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(args.file, "rb") as f:
                data = f.read()
    except OSError as e:
        print("check_exposition: cannot read %s: %s" % (args.file, e), file=sys.stderr)
        return 2
    c = Checker(args.format)
    c.run(data)
    src = "stdin" if args.file == "-" else args.file
    if c.problems:
        for p in c.problems[:200]:
            print("%s: %s" % (src, p))
        if len(c.problems) > 200:
            print("%s: ... and %d more problems" % (src, len(c.problems) - 200))
        print("check_exposition: %s: INVALID %s exposition, %d problem(s)"
              % (src, args.format, len(c.problems)))
        return 1
    print("check_exposition: %s: valid %s exposition: %d families, %d samples, %d histogram series, "
          "%d bytes" % (src, args.format, len(c.families), c.nsamples, c.nhist_series, len(data)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
