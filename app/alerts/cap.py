"""Parse and check CAP 1.2 alert messages (OASIS Common Alerting Protocol).

Alerts reach Baogong from meteorological services or are typed in by hand, so this module
treats every message as hostile: it refuses oversized input, DTDs, entities, external
references and XInclude before looking at the content, then checks the message against
the CAP 1.2 structure (element order, cardinality, value lists, datetimes with an offset,
coordinates) and returns plain frozen dataclasses. It has no Flask or database dependency
and never touches the network or the disk.

Every refusal is a CapError whose text starts with the path of the element at fault,
e.g. "alert/info[2]/area[1]/polygon[1]: first point 30.1,120.2 differs from last ...".

Checks across elements that need a clock or a jurisdiction (an expired alert, expires
before onset, an area outside the district) are not made here; the alert service flags
them, so that a questionable but well-formed alert is shown rather than lost.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import fromstring

MAX_BYTES = 1024 * 1024

CAP_NAMESPACE = "urn:oasis:names:tc:emergency:cap:1.2"
XINCLUDE_NAMESPACE = "http://www.w3.org/2001/XInclude"
# The draft namespace of XInclude, which some processors still honour.
XINCLUDE_NAMESPACES = (XINCLUDE_NAMESPACE, "http://www.w3.org/2003/XInclude")
# CAP 1.2 allows elements of one other namespace, an XML signature, at the end of <alert>.
SIGNATURE_NAMESPACE = "http://www.w3.org/2000/09/xmldsig#"

STATUSES = ("Actual", "Exercise", "System", "Test", "Draft")
MSG_TYPES = ("Alert", "Update", "Cancel", "Ack", "Error")
SCOPES = ("Public", "Restricted", "Private")
CATEGORIES = (
    "Geo", "Met", "Safety", "Security", "Rescue", "Fire",
    "Health", "Env", "Transport", "Infra", "CBRNE", "Other",
)  # fmt: skip
RESPONSE_TYPES = (
    "Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor", "Assess", "AllClear", "None",
)  # fmt: skip
URGENCIES = ("Immediate", "Expected", "Future", "Past", "Unknown")
SEVERITIES = ("Extreme", "Severe", "Moderate", "Minor", "Unknown")
# CAP 1.0 also had "Very Likely"; the CAP 1.2 schema dropped it, so it is refused here too.
CERTAINTIES = ("Observed", "Likely", "Possible", "Unlikely", "Unknown")

DEFAULT_LANGUAGE = "en-US"
# Identifiers and senders are kept in columns of this width; CAP sets no limit, real
# services stay far below it.
MAX_TOKEN_LENGTH = 200
# Instants outside these years are typing errors, and some are beyond what the databases
# store.
FIRST_YEAR, LAST_YEAR = 1970, 2200
# Half the Earth's circumference: a wider circle covers the whole globe anyway.
MAX_RADIUS_KM = 20_038.0

# Child elements in CAP 1.2 order as (name, least, most); most None means unbounded.
_Schema = tuple[tuple[str, int, int | None], ...]

_ALERT_CHILDREN: _Schema = (
    ("identifier", 1, 1),
    ("sender", 1, 1),
    ("sent", 1, 1),
    ("status", 1, 1),
    ("msgType", 1, 1),
    ("source", 0, 1),
    ("scope", 1, 1),
    ("restriction", 0, 1),
    ("addresses", 0, 1),
    ("code", 0, None),
    ("note", 0, 1),
    ("references", 0, 1),
    ("incidents", 0, 1),
    ("info", 0, None),
)
_INFO_CHILDREN: _Schema = (
    ("language", 0, 1),
    ("category", 1, None),
    ("event", 1, 1),
    ("responseType", 0, None),
    ("urgency", 1, 1),
    ("severity", 1, 1),
    ("certainty", 1, 1),
    ("audience", 0, 1),
    ("eventCode", 0, None),
    ("effective", 0, 1),
    ("onset", 0, 1),
    ("expires", 0, 1),
    ("senderName", 0, 1),
    ("headline", 0, 1),
    ("description", 0, 1),
    ("instruction", 0, 1),
    ("web", 0, 1),
    ("contact", 0, 1),
    ("parameter", 0, None),
    ("resource", 0, None),
    ("area", 0, None),
)
_RESOURCE_CHILDREN: _Schema = (
    ("resourceDesc", 1, 1),
    ("mimeType", 1, 1),
    ("size", 0, 1),
    ("uri", 0, 1),
    ("derefUri", 0, 1),
    ("digest", 0, 1),
)
_AREA_CHILDREN: _Schema = (
    ("areaDesc", 1, 1),
    ("polygon", 0, None),
    ("circle", 0, None),
    ("geocode", 0, None),
    ("altitude", 0, 1),
    ("ceiling", 0, 1),
)
_VALUE_PAIR_CHILDREN: _Schema = (("valueName", 1, 1), ("value", 1, 1))

# CAP 1.2 writes a datetime as YYYY-MM-DDThh:mm:ss followed by an explicit offset, nothing
# else: no fractions of a second, no "Z". [0-9] rather than \d, which also takes other digits.
_LOCAL_TIME = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
_DATETIME = re.compile(_LOCAL_TIME + r"[+-][0-9]{2}:[0-9]{2}")
_DATETIME_WITHOUT_OFFSET = re.compile(_LOCAL_TIME + r"(\.[0-9]+)?")
# Plain decimals only: float() would also take "nan", "inf" and "1e3", none of which CAP allows.
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_GB_DECLARATION = re.compile(
    rb"""<\?xml\s+version\s*=\s*["']1\.[0-9]["']\s+encoding\s*=\s*["'](gbk|gb2312|gb18030)["']""",
    re.IGNORECASE,
)
_DECLARED_ENCODING = re.compile(
    rb"""<\?xml\s+version\s*=\s*["'][^"']*["']\s+encoding\s*=\s*["']([A-Za-z0-9._-]+)["']"""
)
_LANGUAGE = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*")


class CapError(ValueError):
    """A CAP message that is refused; str(exc) is the reason, naming the element."""


class OversizedMessage(CapError):
    """A message over MAX_BYTES, refused before it is read to the end."""


@dataclass(frozen=True)
class CapArea:
    """One <area> of an info block: where the alert applies."""

    desc: str
    polygons: tuple[tuple[tuple[float, float], ...], ...]
    circles: tuple[tuple[float, float, float], ...]
    geocodes: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class CapInfo:
    """One <info> block: the alert described in one language."""

    language: str
    categories: tuple[str, ...]
    event: str
    urgency: str
    severity: str
    certainty: str
    effective: datetime | None
    onset: datetime | None
    expires: datetime | None
    sender_name: str | None
    headline: str | None
    description: str | None
    instruction: str | None
    parameters: tuple[tuple[str, str], ...]
    areas: tuple[CapArea, ...]


@dataclass(frozen=True)
class CapAlert:
    """A checked CAP 1.2 message; datetimes keep the offset the sender wrote."""

    identifier: str
    sender: str
    sent: datetime
    status: str
    msg_type: str
    scope: str
    references: tuple[tuple[str, str, datetime], ...]
    note: str | None
    infos: tuple[CapInfo, ...]

    @property
    def languages(self) -> tuple[str, ...]:
        """The languages of the info blocks, each once, in document order."""
        return tuple(dict.fromkeys(info.language for info in self.infos))

    def info_for(self, language: str = "zh-CN") -> CapInfo | None:
        """The info block in that language (exact match, then same primary subtag like zh),
        else the first; None when there are no info blocks."""
        if not self.infos:
            return None

        # min() keeps the first of equally ranked blocks, so document order breaks ties.
        return min(self.infos, key=lambda info: language_rank(info.language, language))

    def infos_ordered(self, language: str = "zh-CN") -> tuple[CapInfo, ...]:
        """Every info block, the one in the user's language first."""
        return tuple(sorted(self.infos, key=lambda info: language_rank(info.language, language)))

    def geocodes(self) -> tuple[tuple[str, str], ...]:
        """All (valueName, value) pairs of all areas of all info blocks, de-duplicated,
        order kept."""
        pairs = (pair for info in self.infos for area in info.areas for pair in area.geocodes)
        return tuple(dict.fromkeys(pairs))


def parse_cap(data: bytes) -> CapAlert:
    """Parse a CAP 1.2 message from its raw bytes, or raise CapError saying what is wrong."""
    root = _parse_xml(data)
    _refuse_xinclude(root)

    if root.tag != f"{{{CAP_NAMESPACE}}}alert":
        namespace, name = _split_tag(root.tag)
        found = f"<{name}> in namespace {namespace}" if namespace else f"<{name}> in no namespace"
        raise CapError(f"root element is {found}; expected <alert> in namespace {CAP_NAMESPACE}")

    return _alert(root)


def _parse_xml(data: bytes) -> Element:
    """Turn bytes into an element tree with every XML feature that reaches outside refused."""
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError("parse_cap takes the message as bytes, as it was received")
    if len(data) > MAX_BYTES:
        raise OversizedMessage(
            f"message is {len(data)} bytes; at most {MAX_BYTES} bytes are accepted"
        )

    data = _as_utf8(bytes(data))
    try:
        return fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DTDForbidden as exc:
        raise CapError(
            f"document type declaration (DOCTYPE {exc.name}) refused: CAP messages carry no DTD"
        ) from None
    except EntitiesForbidden as exc:
        raise CapError(f"entity declaration {exc.name!r} refused") from None
    except ExternalReferenceForbidden as exc:
        raise CapError(f"external reference {exc.sysid!r} refused") from None
    except ParseError as exc:
        raise CapError(f"malformed XML: {exc}") from None
    except (ValueError, LookupError) as exc:
        # expat raises these for encodings it cannot read, such as Big5 or Shift_JIS.
        raise CapError(f"unreadable XML: {exc}") from None


def _as_utf8(data: bytes) -> bytes:
    """Re-encode a message declared as GBK, GB2312 or GB18030 as UTF-8: Chinese systems still
    write these encodings, and expat reads no multi-byte encoding but UTF-8 and UTF-16."""
    declaration = _GB_DECLARATION.match(data)
    if declaration is None:
        return data

    try:
        text = data.decode("gb18030")  # a superset of GBK and GB2312
    except UnicodeDecodeError as exc:
        encoding = declaration[1].decode()
        raise CapError(f"message declared as {encoding} does not decode: {exc}") from None

    # The declaration is ASCII, so its end in bytes is also its end in the decoded text.
    return b'<?xml version="1.0" encoding="UTF-8"' + text[declaration.end() :].encode()


def message_text(data: bytes) -> str:
    """The message as text, decoded as the XML parser read it: by its byte-order mark, by
    the shape of its first bytes (UTF-16 without a mark), or by its declared encoding; for
    a message parse_cap has accepted."""
    import codecs

    data = _as_utf8(bytes(data))
    for mark, encoding in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(mark):
            return data.decode(encoding)
    if data.startswith(b"<\x00"):
        return data.decode("utf-16-le")
    if data.startswith(b"\x00<"):
        return data.decode("utf-16-be")
    declared = _DECLARED_ENCODING.match(data)
    encoding = declared[1].decode("ascii") if declared else "utf-8"
    try:
        return data.decode(encoding)
    except (LookupError, UnicodeDecodeError):
        return data.decode("utf-8", errors="replace")


def _refuse_xinclude(root: Element) -> None:
    """Refuse XInclude anywhere: nothing processes it here, but a later consumer might."""
    for element in root.iter():
        namespace, name = _split_tag(element.tag)
        if namespace in XINCLUDE_NAMESPACES:
            raise CapError(f"XInclude element <{name}> refused")


def _alert(element: Element) -> CapAlert:
    """Build the alert from its checked <alert> element."""
    path = "alert"
    children = _children(element, path, _ALERT_CHILDREN)

    identifier = _token(children, "identifier", path)
    sender = _token(children, "sender", path)
    sent = _datetime(_required_text(children, "sent", path), f"{path}/sent")
    status = _choice(children, "status", path, STATUSES)
    msg_type = _choice(children, "msgType", path, MSG_TYPES)
    scope = _choice(children, "scope", path, SCOPES)

    for name in ("source", "restriction", "incidents"):
        _optional_text(children, name, path)
    for index, code in enumerate(children["code"], start=1):
        _text(code, f"{path}/code[{index}]")
    if scope == "Private" and _optional_text(children, "addresses", path) is None:
        raise CapError(f"{path}/addresses: required when scope is Private")
    if scope == "Restricted" and _optional_text(children, "restriction", path) is None:
        raise CapError(f"{path}/restriction: required when scope is Restricted")

    references_text = _optional_text(children, "references", path)
    references = _references(references_text, f"{path}/references") if references_text else ()

    infos = tuple(
        _info(info, f"{path}/info[{index}]") for index, info in enumerate(children["info"], 1)
    )

    return CapAlert(
        identifier=identifier,
        sender=sender,
        sent=sent,
        status=status,
        msg_type=msg_type,
        scope=scope,
        references=references,
        note=_optional_text(children, "note", path),
        infos=infos,
    )


def _info(element: Element, path: str) -> CapInfo:
    """Build one info block from its checked <info> element."""
    children = _children(element, path, _INFO_CHILDREN)

    language = _optional_text(children, "language", path) or DEFAULT_LANGUAGE
    if not _LANGUAGE.fullmatch(language):
        raise CapError(f"{path}/language: {language!r} is not a language tag such as zh-CN")

    categories = tuple(
        _check_choice(_text(category, f"{path}/category[{index}]"), CATEGORIES, f"{path}/category")
        for index, category in enumerate(children["category"], start=1)
    )
    for index, response_type in enumerate(children["responseType"], start=1):
        value = _text(response_type, f"{path}/responseType[{index}]")
        _check_choice(value, RESPONSE_TYPES, f"{path}/responseType[{index}]")

    _optional_text(children, "audience", path)
    for index, event_code in enumerate(children["eventCode"], start=1):
        _value_pair(event_code, f"{path}/eventCode[{index}]")
    for name in ("web", "contact"):
        _optional_text(children, name, path)
    for index, resource in enumerate(children["resource"], start=1):
        _resource(resource, f"{path}/resource[{index}]")

    return CapInfo(
        language=language,
        categories=categories,
        event=_required_text(children, "event", path),
        urgency=_choice(children, "urgency", path, URGENCIES),
        severity=_choice(children, "severity", path, SEVERITIES),
        certainty=_choice(children, "certainty", path, CERTAINTIES),
        effective=_optional_datetime(children, "effective", path),
        onset=_optional_datetime(children, "onset", path),
        expires=_optional_datetime(children, "expires", path),
        sender_name=_optional_text(children, "senderName", path),
        headline=_optional_text(children, "headline", path),
        description=_optional_text(children, "description", path),
        instruction=_optional_text(children, "instruction", path),
        parameters=tuple(
            _value_pair(parameter, f"{path}/parameter[{index}]")
            for index, parameter in enumerate(children["parameter"], start=1)
        ),
        areas=tuple(
            _area(area, f"{path}/area[{index}]")
            for index, area in enumerate(children["area"], start=1)
        ),
    )


def _resource(element: Element, path: str) -> None:
    """Check a <resource> reference; its content is not used by Baogong."""
    children = _children(element, path, _RESOURCE_CHILDREN)

    _required_text(children, "resourceDesc", path)
    _required_text(children, "mimeType", path)
    for name in ("uri", "derefUri", "digest"):
        _optional_text(children, name, path)

    size = _optional_text(children, "size", path)
    if size is not None and not size.isdigit():
        raise CapError(f"{path}/size: {size!r} is not a whole number of bytes")


def _area(element: Element, path: str) -> CapArea:
    """Build one area from its checked <area> element."""
    children = _children(element, path, _AREA_CHILDREN)

    polygons = tuple(
        _polygon(_text(polygon, f"{path}/polygon[{index}]"), f"{path}/polygon[{index}]")
        for index, polygon in enumerate(children["polygon"], start=1)
    )
    circles = tuple(
        _circle(_text(circle, f"{path}/circle[{index}]"), f"{path}/circle[{index}]")
        for index, circle in enumerate(children["circle"], start=1)
    )
    geocodes = tuple(
        _value_pair(geocode, f"{path}/geocode[{index}]", value_required=True)
        for index, geocode in enumerate(children["geocode"], start=1)
    )

    # Altitude and ceiling are in feet; Baogong does not use them but refuses nonsense.
    for name in ("altitude", "ceiling"):
        value = _optional_text(children, name, path)
        if value is not None and not _DECIMAL.fullmatch(value):
            raise CapError(f"{path}/{name}: {value!r} is not a number")
    if children["ceiling"] and not children["altitude"]:
        raise CapError(f"{path}/ceiling: may only be given together with <altitude>")

    return CapArea(
        desc=_required_text(children, "areaDesc", path),
        polygons=polygons,
        circles=circles,
        geocodes=geocodes,
    )


def _children(element: Element, path: str, schema: _Schema) -> dict[str, list[Element]]:
    """Check an element's CAP children against (name, least, most) in order and group them
    by name. Only <alert> may end with an XML signature, which is skipped; an element of
    any other namespace is refused."""
    order = [name for name, _least, _most in schema]
    found: dict[str, list[Element]] = {name: [] for name in order}
    position = 0
    signed = False

    for child in element:
        namespace, name = _split_tag(child.tag)
        if namespace is None:
            # An unqualified element in a CAP message is nearly always a CAP element whose
            # prefix was forgotten; skipping it would drop data without a word.
            raise CapError(f"{path}: element <{name}> is in no namespace, expected {CAP_NAMESPACE}")
        if namespace == SIGNATURE_NAMESPACE and path == "alert":
            signed = True
            continue
        if namespace != CAP_NAMESPACE:
            raise CapError(f"{path}: element <{name}> of namespace {namespace} is not part of CAP")
        if signed:
            raise CapError(f"{path}: <{name}> after the signature; the signature must come last")
        if name not in found:
            raise CapError(f"{path}: unknown CAP element <{name}>")

        index = order.index(name)
        if index < position:
            raise CapError(
                f"{path}: <{name}> is out of order, it must come before <{order[position]}>"
            )
        position = index
        found[name].append(child)

    for name, least, most in schema:
        count = len(found[name])
        if count < least:
            raise CapError(f"{path}: missing required element <{name}>")
        if most is not None and count > most:
            raise CapError(f"{path}: <{name}> appears {count} times, at most {most} allowed")

    return found


def _split_tag(tag: str) -> tuple[str | None, str]:
    """Split an ElementTree tag "{namespace}name" into namespace (None if absent) and name."""
    if tag.startswith("{"):
        namespace, _, name = tag[1:].partition("}")
        return namespace, name
    return None, tag


def _text(element: Element, path: str) -> str:
    """The stripped text of a simple element, which must not hold elements of its own."""
    if len(element):
        raise CapError(f"{path}: must hold text only, found a child element")
    return (element.text or "").strip()


def _optional_text(children: dict[str, list[Element]], name: str, path: str) -> str | None:
    """The text of an optional element; None when it is absent or empty."""
    if not children[name]:
        return None
    return _text(children[name][0], f"{path}/{name}") or None


def _required_text(children: dict[str, list[Element]], name: str, path: str) -> str:
    """The text of a required element, which must not be empty."""
    text = _text(children[name][0], f"{path}/{name}")
    if not text:
        raise CapError(f"{path}/{name}: must not be empty")
    return text


def _token(children: dict[str, list[Element]], name: str, path: str) -> str:
    """Identifier or sender: CAP forbids spaces, commas, < and & because references are
    written as comma-separated triples separated by spaces."""
    text = _required_text(children, name, path)
    if any(char.isspace() or char in ",<&" for char in text):
        raise CapError(f"{path}/{name}: {text!r} must not contain spaces, commas, < or &")
    if len(text) > MAX_TOKEN_LENGTH:
        raise CapError(f"{path}/{name}: {len(text)} characters, at most {MAX_TOKEN_LENGTH}")
    return text


def _choice(children: dict[str, list[Element]], name: str, path: str, allowed: tuple) -> str:
    """The text of a required element whose value comes from a fixed CAP list."""
    return _check_choice(_required_text(children, name, path), allowed, f"{path}/{name}")


def _check_choice(value: str, allowed: tuple, path: str) -> str:
    """Return value if CAP allows it there (the lists are case-sensitive)."""
    if value not in allowed:
        raise CapError(f"{path}: {value!r} is not one of {', '.join(allowed)}")
    return value


def _optional_datetime(children: dict[str, list[Element]], name: str, path: str) -> datetime | None:
    """The datetime of an optional element, or None when it is absent or empty."""
    text = _optional_text(children, name, path)
    return _datetime(text, f"{path}/{name}") if text is not None else None


def _datetime(text: str, path: str) -> datetime:
    """Read a CAP datetime, which must state its offset from UTC ("-00:00" means UTC)."""
    if _DATETIME.fullmatch(text):
        try:
            value = datetime.fromisoformat(text)
        except ValueError as exc:
            raise CapError(f"{path}: {text!r} is not a valid date and time ({exc})") from None
        try:
            year = value.astimezone(UTC).year
        except OverflowError:
            year = value.year  # in UTC it falls off the calendar altogether
        if not FIRST_YEAR <= year <= LAST_YEAR:
            raise CapError(f"{path}: {text!r} is outside the years {FIRST_YEAR}-{LAST_YEAR}")
        return value

    if text.endswith(("Z", "z")):
        raise CapError(
            f"{path}: {text!r} uses the 'Z' designator, which CAP 1.2 does not allow; "
            "write the offset instead, e.g. +00:00"
        )
    if _DATETIME_WITHOUT_OFFSET.fullmatch(text):
        raise CapError(f"{path}: {text!r} has no UTC offset, e.g. +08:00")
    raise CapError(f"{path}: {text!r} is not a CAP datetime such as 2024-07-12T21:31:38+08:00")


def _references(text: str, path: str) -> tuple[tuple[str, str, datetime], ...]:
    """Read the earlier messages an update or cancel refers to: "sender,identifier,sent"
    triples separated by whitespace."""
    references = []
    for triple in text.split():
        parts = triple.split(",")
        if len(parts) != 3 or not parts[0] or not parts[1]:
            raise CapError(f"{path}: {triple!r} is not a sender,identifier,sent triple")
        sender, identifier, sent = parts
        references.append((sender, identifier, _datetime(sent, path)))
    return tuple(references)


def _polygon(text: str, path: str) -> tuple[tuple[float, float], ...]:
    """Read a closed polygon of "lat,lon" points separated by whitespace."""
    points = tuple(_point(pair, path) for pair in text.split())

    if len(points) < 4:
        raise CapError(f"{path}: a polygon needs at least 4 points, found {len(points)}")
    if points[0] != points[-1]:
        first, last = text.split()[0], text.split()[-1]
        raise CapError(f"{path}: first point {first} differs from last point {last}; not closed")
    # A ring that crosses itself still covers its lobes, as repaired by make_valid; one
    # that covers nothing at all (a point, a line) is no area.
    from shapely import make_valid
    from shapely.geometry import Polygon

    if make_valid(Polygon([(lon, lat) for lat, lon in points])).area < 1e-10:  # about 1 m²
        raise CapError(f"{path}: the polygon encloses no area (its points lie on one line)")
    return points


def _circle(text: str, path: str) -> tuple[float, float, float]:
    """Read a circle written as "lat,lon radius", the radius in kilometres."""
    parts = text.split()
    if len(parts) != 2:
        raise CapError(f"{path}: {text!r} is not a circle written as 'lat,lon radius'")

    latitude, longitude = _point(parts[0], path)
    if not _DECIMAL.fullmatch(parts[1]) or not 0 <= float(parts[1]) <= MAX_RADIUS_KM:
        raise CapError(
            f"{path}: radius {parts[1]!r} is not a number of kilometres from 0 to {MAX_RADIUS_KM:g}"
        )
    return latitude, longitude, float(parts[1])


def _point(pair: str, path: str) -> tuple[float, float]:
    """Read one "lat,lon" point in WGS 84 degrees and check it lies on the globe."""
    parts = pair.split(",")
    if len(parts) != 2 or not all(_DECIMAL.fullmatch(part) for part in parts):
        raise CapError(f"{path}: {pair!r} is not a point written as 'lat,lon'")

    latitude, longitude = float(parts[0]), float(parts[1])
    if not -90 <= latitude <= 90:
        raise CapError(f"{path}: latitude {parts[0]} in {pair!r} is outside -90..90")
    if not -180 <= longitude <= 180:
        raise CapError(f"{path}: longitude {parts[1]} in {pair!r} is outside -180..180")
    return latitude, longitude


def _value_pair(element: Element, path: str, value_required: bool = False) -> tuple[str, str]:
    """Read a valueName/value pair (eventCode, parameter, geocode)."""
    children = _children(element, path, _VALUE_PAIR_CHILDREN)

    name = _required_text(children, "valueName", path)
    if value_required:
        return name, _required_text(children, "value", path)
    return name, _text(children["value"][0], f"{path}/value")


def language_rank(tag: str, wanted: str) -> int:
    """How well an info block's language fits the wanted one: 0 exact, 1 same primary
    subtag, 2 other. Tags compare case-insensitively and zh_CN counts as zh-CN."""
    tag, wanted = tag.replace("_", "-").lower(), wanted.replace("_", "-").lower()
    if tag == wanted:
        return 0
    if tag.split("-")[0] == wanted.split("-")[0]:
        return 1
    return 2
