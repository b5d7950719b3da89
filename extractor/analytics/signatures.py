"""Failure signatures: the cause of a failed task run with its variable parts taken out.

Two failures with the same cause get the same signature across jobs and days, so failures can be
counted by cause. Pure and stdlib only: never does I/O and never raises on odd input.

Where the cause is read from, first match wins:

1. A timeout ("Run timed out", "task timed out", result TIMEDOUT) is one fixed signature.
2. With no error and no trace (cluster launch failures, spot loss, an unreachable driver) the
   state message is the cause: its termination reason ("Reason: X", "code: X", "X(CLOUD_FAILURE)";
   "Cloud Provider Launch Failure" reads as CLOUD_PROVIDER_LAUNCH_FAILURE) alone, or else its
   template together with the termination code.
3. A Databricks error class in brackets ([TABLE_OR_VIEW_NOT_FOUND]): the class and the first
   sentence of its message. The last class in the error wins (the innermost of a chain), else
   the last in the trace.
4. A dbt test failure: the fail condition ("configured to fail if != <num>"); the test name is
   a variable part like a table name.
5. The innermost exception: the last `Caused by:` line; else the last line naming an exception
   (a class name ending in Exception, Error or Failure, outside stack frames: the final line of a
   Python traceback; inside Py4JJavaError / "An error occurred while calling
   oNNN.xxx" the wrapped Java exception on the line after). On a line naming several classes the
   last one followed by its message wins. Classes keep their simple name (AnalysisException,
   whichever package printed it). A cause under "Job aborted due to stage failure" is marked as a
   stage failure, so an executor's OutOfMemoryError differs from the same text elsewhere.
6. Else the first line of the error, trace or state message.

The chosen message (one line, at most 400 characters; never the whole trace) is normalised:
ANSI colours removed; Delta partition specs `[k=v, ...]` -> `[<partition>]`; storage paths
(dbfs:/, s3://, s3a://, abfss://, gs://, wasbs://, hdfs://, file:/) -> `<path>`; http(s) URLs ->
`<url>`; emails -> `<email>`; UUIDs -> `<uuid>`; dates, times and timestamps -> `<ts>`; IPv4
addresses (with port) -> `<ip>`; `quoted`.`names` -> `<name>`; 'single' and "double" quoted
values (also b'' and r'') -> `<value>`; absolute, Windows and relative file paths -> `<path>`;
cluster ids, prefixed ids (i-0abc...) -> `<id>`; hex -> `<hex>`; the word after "not found:",
"does not exist:", "no such file or directory:" -> `<name>`; other numbers -> `<num>`; requests'
"503 Server Error: <reason> for url" keeps the status and drops the server's reason phrase; runs
of one placeholder (`<name>, <name>`) collapse to one; whitespace collapses.

The id is the first 12 hex digits of the SHA-1 of the cause key and does not include the
version: bump SIGNATURE_VERSION whenever a change of this module changes any key, so stored
signatures are recomputed. Inputs longer than 32 KB are read as their first and last 16 KB, and
a trace is searched for error classes and exception lines in its last and first 8 KB only.
"""

from __future__ import annotations

import hashlib
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

_T = TypeVar("_T")

SIGNATURE_VERSION: int = 2

_MAX_INPUT = 32 * 1024
_SCAN_END = 8 * 1024
_MAX_MESSAGE = 400
_MAX_TITLE = 120


@dataclass(frozen=True)
class Signature:
    """A cause: stable id, readable title and the Databricks error class when there is one."""

    id: str
    title: str
    error_class: str | None


def sign(
    error: str | None,
    error_trace: str | None = None,
    state_message: str | None = None,
    termination_code: str | None = None,
) -> Signature | None:
    """The signature of one failed task run, or None when there is nothing to sign."""
    err = _bound(error)
    trace = _bound(error_trace)
    state = _bound(state_message)
    code = (termination_code or "").strip()
    if not (err.strip() or trace.strip() or state.strip() or code):
        return None
    if code == "TIMEDOUT" or any(_timed_out(t) for t in (state, err[:2000])):
        return _make("timeout", "Run timed out", None)
    if not (err.strip() or trace.strip()):
        return _from_state(state, code)
    return _from_output(err, trace)


# --- where the cause is --------------------------------------------------------------------------

_TIMEOUT = re.compile(
    r"\b(?:run|task|job)(?: [\w.-]{1,100})? (?:has )?(?:timed out|exceeded (?:its|the) timeout)",
    re.I,
)
_REASON = re.compile(
    r"(?:Reason|code):\s*([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)"
    r"|\b([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)\s*\((?:CLOUD_FAILURE|CLIENT_ERROR|SERVICE_FAULT|"
    r"INTERNAL_ERROR|SUCCESS)\)"
    r"|Reason:\s*([A-Z][a-z]+(?: [A-Z][a-z]+)+)"
)
# At least one "_" or "." keeps log levels and dbt's [RUN] / [OK in 0.1s] out.
_ERROR_CLASS = re.compile(r"\[(_?[A-Z][A-Z0-9]*(?:[_.][A-Z0-9]+)+)\]")
_CLASS_PREFIX = re.compile(
    r"^\s*(?:(?:[\w$]+\.)*[A-Z][\w$]*(?:Exception|Error)\s*:\s*|\[[A-Z0-9_.]+\]\s*)+"
)
_DBT_FAIL = re.compile(r"Got \d+ results?, configured to (fail|warn) if ([^\n]*)")
_EXC = r"(?:[A-Za-z_$][\w$]*\.)*[A-Z][\w$]*(?:Exception|Error|Failure)"
# Java and Python stack frames name classes but are never the cause.
_FRAME = re.compile(r"[ \t|>]*(?:at |File |\.\.\. )")
_EXC_IN_LINE = re.compile(r"(?<![\w$.])(" + _EXC + r")(?=(:|[ \t]*$|[ \t]+\())")
_SENTENCE_END = re.compile(r"[.?!;](?=\s|$)|\s+SQLSTATE\b")


def _bound(text: str | None) -> str:
    if not text:
        return ""
    if len(text) > _MAX_INPUT:
        half = _MAX_INPUT // 2
        text = text[:half] + "\n" + text[-half:]
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    return text


def _timed_out(text: str) -> bool:
    lowered = text.lower()
    return ("timed out" in lowered or "timeout" in lowered) and bool(_TIMEOUT.search(text))


def _from_state(state: str, code: str) -> Signature:
    m = _REASON.search(state)
    if m:
        reason = m.group(1) or m.group(2) or m.group(3).upper().replace(" ", "_")
        # The reason is the cause; the task's termination code for it varies (a driver that is
        # unreachable ends one task as CLUSTER_ERROR, another as DRIVER_ERROR).
        return _make(f"reason:{reason}", f"Cluster terminated: {reason}", None)
    line = _first_line(state)
    if not line:
        return _make(f"code:{code}", code, None)
    template = _normalise(line)
    return _make(f"state:{code}:{template}", template + (f" ({code})" if code else ""), None)


def _from_output(err: str, trace: str) -> Signature:
    found = _error_class(err) or _in_ends(_error_class, trace)
    if found:
        cls, rest = found
        sentence = _first_sentence(_normalise(_first_line(_CLASS_PREFIX.sub("", rest))))
        return _make(f"class:{cls}:{sentence}", f"[{cls}] {sentence}".rstrip(), cls)
    text = err + "\n" + trace
    if "configured to " in text:
        m = _DBT_FAIL.search(text)
        if m:
            condition = _normalise(m.group(2))
            return _make(
                f"dbt:{m.group(1)}:{condition}",
                f"dbt test failed: configured to {m.group(1)} if {condition}",
                None,
            )
    line = (
        _caused_by(trace)
        or _caused_by(err)
        or _in_ends(_exception_line, trace)
        or _exception_line(err)
    )
    if line is not None:
        cls, message = _split_exception(line)
        stage = "due to stage failure" in err or "due to stage failure" in trace[:_SCAN_END]
        if stage and not message.startswith("Job aborted due to stage failure"):
            key, prefix = f"stage:{cls}:", "Stage failure: "
        else:
            key, prefix = f"exc:{cls}:", ""
        template = _normalise(message)
        if not cls:
            title = prefix + template
        else:
            joiner = " " if template.startswith("(") else ": "
            title = f"{prefix}{cls}{joiner}{template}".rstrip(": ")
        return _make(key + template, title, None)
    template = _normalise(_first_line(err) or _first_line(trace))
    return _make(f"msg:{template}", template, None)


def _in_ends(find: Callable[[str], _T | None], text: str) -> _T | None:
    """`find` over the last then the first 8 KB of a long trace: the middle is stack frames."""
    if len(text) <= 2 * _SCAN_END:
        return find(text)
    tail = text[-_SCAN_END:]
    return find(tail[tail.find("\n") + 1 :]) or find(text[:_SCAN_END])


def _error_class(text: str) -> tuple[str, str] | None:
    if "[" not in text:
        return None
    last = _last_match(_ERROR_CLASS, text)
    if last is None:
        return None
    end = text.find("\n", last.end())
    return last.group(1), text[last.end() : end if end >= 0 else len(text)]


def _last_match(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    last = deque(pattern.finditer(text), maxlen=1)
    return last[0] if last else None


def _caused_by(text: str) -> str | None:
    i = text.rfind("Caused by:")
    if i < 0:
        return None
    end = text.find("\n", i)
    return text[i + len("Caused by:") : end if end >= 0 else len(text)].strip()


def _exception_line(text: str) -> str | None:
    """The last line naming an exception followed by its message, the end of line or "("."""
    # Each word's last position is searched again only once the scan has passed it, so a long
    # trace costs one pass per word, not one per candidate line.
    exc, err, fail = text.rfind("Exception"), text.rfind("Error"), text.rfind("Failure")
    while True:
        pos = max(exc, err, fail)
        if pos < 0:
            return None
        start = text.rfind("\n", 0, pos) + 1
        if not _FRAME.match(text, start):
            stop = text.find("\n", pos)
            line = text[start : stop if stop >= 0 else len(text)]
            if _EXC_IN_LINE.search(line):
                return line.strip()
        if exc >= start:
            exc = text.rfind("Exception", 0, start)
        if err >= start:
            err = text.rfind("Error", 0, start)
        if fail >= start:
            fail = text.rfind("Failure", 0, start)


def _split_exception(line: str) -> tuple[str, str]:
    """The simple class name and the message of the innermost exception named on a line."""
    last = _last_match(_EXC_IN_LINE, line)
    if last is None:
        return "", line
    simple = last.group(1).rsplit(".", 1)[-1]
    return simple, line[last.end() :].lstrip(":").strip()


def _first_line(text: str) -> str:
    start = 0
    while start < len(text):
        stop = text.find("\n", start)
        stop = len(text) if stop < 0 else stop
        line = text[start:stop].strip()
        if line:
            return line[:_MAX_MESSAGE]
        start = stop + 1
    return ""


def _first_sentence(text: str) -> str:
    m = _SENTENCE_END.search(text)
    return text[: m.end()] if m else text


def _make(key: str, title: str, error_class: str | None) -> Signature:
    digest = hashlib.sha1(key.encode("utf-8")).hexdigest()[:12]
    title = title.strip() or key
    if len(title) > _MAX_TITLE:
        title = title[: _MAX_TITLE - 3].rstrip() + "..."
    return Signature(digest, title, error_class)


# --- normalisation -------------------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_STOP = r"[^\s'\"`<>()\[\]{},;]"
# Each rule runs only when one of its needles is in the text: most messages need few rules.
_DIGITS = tuple("0123456789")
_NORMALISE: list[tuple[tuple[str, ...], re.Pattern[str], str]] = [
    (("=",), re.compile(r"\[[^\[\]\n=]{1,80}=[^\[\]\n]*\]"), "[<partition>]"),
    (
        (":/",),
        re.compile(r"\b(?:dbfs|s3[an]?|abfss?|wasbs?|gs|hdfs|file|adl):/" + _STOP + r"*(?<!\.)"),
        "<path>",
    ),
    (("://",), re.compile(r"\bhttps?://" + _STOP + r"*(?<!\.)"), "<url>"),
    (("/",), re.compile(r"(?<![\w:/.<>-])/(?:[\w.@+~=-]+/)*[\w.@+~=-]+/?(?<!\.)"), "<path>"),
    ((":\\",), re.compile(r"\b[A-Za-z]:\\[^\s'\"]+"), "<path>"),
    (("/",), re.compile(r"(?<![\w/<])(?:[\w.-]+/)+[\w.-]+\.[A-Za-z]\w{0,5}\b"), "<path>"),
    (("@",), re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "<email>"),
    (("-",), re.compile(r"\b[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\b"), "<uuid>"),
    (
        _DIGITS,
        re.compile(
            r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
            r"|\b\d{2}/\d{2}/\d{2,4}(?: \d{2}:\d{2}:\d{2})?|\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?"
        ),
        "<ts>",
    ),
    (_DIGITS, re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<ip>"),
    (("`",), re.compile(r"`[^`\n]{0,200}`(?:\.`[^`\n]{0,200}`)*"), "<name>"),
    (("'",), re.compile(r"(?<![\w'])[bBrRuUfF]{0,2}'[^'\n]{0,200}'(?![\w'])"), "<value>"),
    (('"',), re.compile(r'"[^"\n]{0,200}"'), "<value>"),
    (("-",), re.compile(r"\b\d{4}-\d{6}-[a-z0-9]{8}\b"), "<id>"),
    (("-",), re.compile(r"\b[a-z]{1,5}-[0-9a-f]{8,}\b"), "<id>"),
    (
        _DIGITS,
        re.compile(r"\b0x[0-9a-fA-F]+\b|\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b"),
        "<hex>",
    ),
    (
        ("found", "Found", "FOUND", "exist", "Exist", "EXIST", "such", "Such", "find", "Find"),
        re.compile(
            r"((?:not found|does not exist|no such file or directory|could not find|cannot find)"
            r"\s*:\s*)[^\s;,'\"`<]+",
            re.I,
        ),
        r"\1<name>",
    ),
    (_DIGITS, re.compile(r"\d+(?:\.\d+)*"), "<num>"),
    (("<http>",), re.compile(r"<http>: [^\n]*? for url"), "<http> for url"),
    ((">",), re.compile(r"<(\w+)>(?:\s*[,.|]\s*<\1>)+"), r"<\1>"),
]


_HTTP_STATUS = re.compile(r"\b[1-5]\d\d (?:Client|Server) Error")


def _normalise(text: str) -> str:
    text = text[:_MAX_MESSAGE]
    # An HTTP status is the cause, not a variable part: set it aside from the number rule.
    statuses = _HTTP_STATUS.findall(text)
    if statuses:
        text = _HTTP_STATUS.sub("<http>", text)
    for needles, pattern, replacement in _NORMALISE:
        if any(needle in text for needle in needles):
            text = pattern.sub(replacement, text)
    text = " ".join(text.split())
    for status in statuses:
        text = text.replace("<http>", status, 1)
    return text.strip()
