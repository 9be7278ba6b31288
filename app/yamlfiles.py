"""YAML read strictly: the safe loader, with every key once and no aliases."""

import yaml

from app.errors import InvalidInput


class UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a key given twice in one mapping: YAML would keep the last
    and drop the first without a word."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


class PlainLoader(UniqueKeyLoader):
    """Also refuses anchors and aliases: a few lines of aliases can stand for gigabytes
    once written out as JSON, and a document stored as JSON keeps none of them."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.events.AliasEvent):
            mark = self.peek_event().start_mark
            problem = "anchors and aliases are not allowed; write the value out"
            raise yaml.composer.ComposerError(None, None, problem, mark)
        return super().compose_node(parent, index)


def load_yaml(text, name, loader=UniqueKeyLoader):
    """The document in `text`; a syntax error or a repeated key refuses it with its line."""
    try:
        return yaml.load(text, Loader=loader)
    except RecursionError:
        raise InvalidInput(f"{name} refused", {name: ["nested too deeply"]}) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{name} line {mark.line + 1}" if mark else name
        problem = getattr(error, "problem", None) or "not valid YAML"
        raise InvalidInput(f"{name} refused: not valid YAML", {where: [problem]}) from None


def key_lines(text, loader=UniqueKeyLoader):
    """The line of every key and list item of a YAML mapping, by its path
    (`duties[3].levels`); for naming where a refused value stands."""
    lines = {}

    def walk(node, path):
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = f"{path}.{key_node.value}" if path else str(key_node.value)
                lines[key] = key_node.start_mark.line + 1
                walk(value_node, key)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                key = f"{path}[{index}]"
                lines[key] = item.start_mark.line + 1
                walk(item, key)

    try:
        walk(yaml.compose(text, Loader=loader), "")
    except yaml.YAMLError:
        return {}
    return lines
