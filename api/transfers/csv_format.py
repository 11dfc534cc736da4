"""CRM-shaped CSV files → import rows (R21).

A file is UTF-8 (a byte-order mark is dropped), comma-, semicolon- or tab-separated (the
header line decides), with one header line. Headers are matched case-insensitively and
regardless of spaces, underscores, hyphens and dots against the aliases below, which cover the
exports of the common CRMs ("First Name", "first_name", "Given Name", "E-mail", "Record ID",
"Contact Owner", "Organisation", …). Columns matching nothing, and a second column for a field
already matched, are ignored and reported on the job. Blank lines are skipped; row numbers
count the data rows from 1 (the header is not a row).

The rows come out as the job's canonical rows: dicts keyed by the fields below, holding the
cells as written; the import job validates them row by row.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

from api.core.errors import BadInput

# The canonical fields of an import row, in the order of the ContactImportRow input.
FIELDS = (
    "external_id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "company_name",
    "crm_owner_id",
    "status",
)
# How errors and documentation name each field: as the GraphQL input does.
FIELD_NAMES = {
    "external_id": "externalId",
    "first_name": "firstName",
    "last_name": "lastName",
    "email": "email",
    "phone": "phone",
    "company_name": "companyName",
    "crm_owner_id": "crmOwnerId",
    "status": "status",
}
# Header spellings per field (compared after `header_key`); the GraphQL name is always one.
ALIASES: dict[str, tuple[str, ...]] = {
    "external_id": (
        "External ID",
        "ID",
        "Record ID",
        "Contact ID",
        "CRM ID",
        "Person ID",
        "Lead ID",
        "Customer ID",
        "Client ID",
    ),
    "first_name": ("First Name", "Given Name", "Forename", "First"),
    "last_name": ("Last Name", "Surname", "Family Name", "Last"),
    "email": (
        "Email",
        "Email Address",
        "E-mail",
        "E-mail Address",
        "Mail",
        "Primary Email",
        "Work Email",
    ),
    "phone": (
        "Phone",
        "Phone Number",
        "Mobile",
        "Mobile Phone",
        "Mobile Number",
        "Telephone",
        "Tel",
        "Primary Phone",
        "Work Phone",
        "Business Phone",
    ),
    "company_name": (
        "Company",
        "Company Name",
        "Organisation",
        "Organization",
        "Organisation Name",
        "Organization Name",
        "Account",
        "Account Name",
        "Employer",
    ),
    "crm_owner_id": (
        "Owner",
        "Owner ID",
        "Agent ID",
        "Agent",
        "Contact Owner",
        "Contact Owner ID",
        "CRM Owner",
        "CRM Owner ID",
        "Assigned To",
        "Assigned Agent",
    ),
    "status": ("Status", "Contact Status"),
}
DELIMITERS = (",", ";", "\t")
MAX_REPORTED_COLUMNS = 100

_SEPARATORS = re.compile(r"[\s_\-./()#:]+")


def header_key(name: str) -> str:
    """A header as aliases are compared: lower case, without spaces, _ - . / ( ) # :."""
    return _SEPARATORS.sub("", name.replace("\ufeff", "")).lower()


_FIELD_OF: dict[str, str] = {}
for _field, _aliases in ALIASES.items():
    for _alias in (*_aliases, FIELD_NAMES[_field], _field):
        _FIELD_OF.setdefault(header_key(_alias), _field)


@dataclass
class ParsedCsv:
    rows: list[dict[str, str]]
    # field → the header it was read from
    columns: dict[str, str] = field(default_factory=dict)
    unknown_columns: list[str] = field(default_factory=list)


def _bad(message: str) -> BadInput:
    return BadInput(message, field="file")


def decode(data: bytes) -> str:
    if b"\x00" in data:
        raise _bad("The file is not a CSV file (it holds binary data)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _bad("The file is not UTF-8 text; save it as “CSV UTF-8”") from None


def sniff_delimiter(text: str) -> str:
    """The separator of the header line: the most frequent of , ; and tab outside quotes."""
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif char in "\r\n":
            break
        elif char in counts:
            counts[char] += 1
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


# A cell a spreadsheet would run as a formula starts with one of these; exports guard such
# cells with a leading apostrophe (OWASP, "CSV Injection"), and imports take it off again.
FORMULA_STARTS = frozenset("=+-@\t\r\n")


def guard(text: str) -> str:
    return "'" + text if text and text[0] in FORMULA_STARTS else text


def unguard(text: str) -> str:
    return text[1:] if len(text) > 1 and text[0] == "'" and text[1] in FORMULA_STARTS else text


def parse(data: bytes, *, max_rows: int) -> ParsedCsv:
    """The import rows of a CSV file; BAD_USER_INPUT (field `file`) when it is no CSV we can
    read, has no externalId column, or has more than `max_rows` rows."""
    text = decode(data)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sniff_delimiter(text))
    try:
        header = next((cells for cells in reader if any(c.strip() for c in cells)), None)
        if header is None:
            raise _bad("The file is empty: it needs a header line and rows")
        parsed = ParsedCsv(rows=[])
        mapping: list[tuple[int, str]] = []
        for index, name in enumerate(header):
            label = name.replace("\ufeff", "").strip()
            if not label:
                continue
            target = _FIELD_OF.get(header_key(label))
            if target is None or target in parsed.columns:
                if len(parsed.unknown_columns) < MAX_REPORTED_COLUMNS:
                    parsed.unknown_columns.append(label[:200])
                continue
            parsed.columns[target] = label
            mapping.append((index, target))
        if "external_id" not in parsed.columns:
            raise _bad(
                "The file has no externalId column (a header such as "
                + ", ".join(f"“{a}”" for a in ALIASES["external_id"][:4])
                + ")"
            )
        width = len(header)
        rows = parsed.rows
        for cells in reader:
            if len(cells) < width:
                cells += [""] * (width - len(cells))
            row = {target: unguard(cells[index]) for index, target in mapping if cells[index]}
            if not row and not any(c.strip() for c in cells):
                continue  # a blank line
            if len(rows) >= max_rows:
                raise _bad(f"The file has more than {max_rows} rows; split it")
            rows.append(row)
    except csv.Error as exc:
        raise _bad(f"The file is not a readable CSV file (line {reader.line_num}: {exc})") from None
    return parsed
