"""Plan files: YAML read strictly and checked, written back with every key in its order."""

import os

import yaml

from app.errors import InvalidInput
from app.process.services import import_plan, validate_plan
from app.yamlfiles import PlainLoader, key_lines, load_yaml

# A plan is a few hundred lines; a file much larger than this is not one.
MAX_BYTES = 1024 * 1024


def read_plan_bytes(path):
    """The bytes of the plan file at `path`, refused if it is no readable file or too big."""
    name = os.path.basename(path) or path
    if os.path.isdir(path):
        raise InvalidInput(f"{name} refused", {name: ["is a directory, not a plan file"]})
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_BYTES + 1)
    except OSError as error:
        raise InvalidInput(f"{name} refused", {name: [error.strerror or str(error)]}) from None
    if len(data) > MAX_BYTES:
        raise InvalidInput(f"{name} refused", {name: [f"larger than {MAX_BYTES} bytes"]})
    return data


def read_plan_file(path):
    """The checked plan document in the YAML file at `path`; refused naming key and line."""
    return parse_plan(read_plan_bytes(path), os.path.basename(path) or path)


def parse_plan(data, name="plan"):
    """The checked plan document in YAML text or UTF-8 bytes; refused naming key and line."""
    if isinstance(data, bytes):
        if len(data) > MAX_BYTES:
            raise InvalidInput(f"{name} refused", {name: [f"larger than {MAX_BYTES} bytes"]})
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise InvalidInput(
                f"{name} refused: not UTF-8",
                {name: [f"save the plan as UTF-8 text (byte {error.start} is not UTF-8)"]},
            ) from None

    document = load_yaml(data, name, loader=PlainLoader)
    if not isinstance(document, dict):
        raise InvalidInput(
            f"{name} refused", {name: ["a plan is one mapping with name, levels and the rest"]}
        )
    try:
        validate_plan(document)
    except InvalidInput as error:
        raise InvalidInput(f"{name} refused", _with_lines(error.errors, data)) from None
    return document


def _with_lines(errors, text):
    """Each message prefixed with the line of its key, or of the nearest enclosing key."""
    lines = key_lines(text, loader=PlainLoader)
    named = {}
    for key, messages in errors.items():
        line = _line_of(key, lines)
        prefix = f"line {line}: " if line else ""
        named[key] = [prefix + message for message in messages]
    return named


def _line_of(key, lines):
    while key:
        if key in lines:
            return lines[key]
        cut = max(key.rfind("."), key.rfind("["))
        key = key[:cut] if cut > 0 else ""
    return None


def import_plan_text(data, at, name="plan"):
    """Check and store the plan in YAML text or bytes; returns (plan, outcome).

    A refusal names the key and its line; the caller's transaction is left to roll back.
    """
    document = parse_plan(data, name)
    try:
        return import_plan(document, at)
    except InvalidInput as error:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
        raise InvalidInput(f"{name} refused: {error}", _with_lines(error.errors, text)) from None


def dump_plan(document):
    """The document as YAML: Chinese kept as written, keys in their order, every note."""
    return yaml.safe_dump(
        document, allow_unicode=True, sort_keys=False, default_flow_style=False, width=100
    )
