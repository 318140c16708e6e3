"""The contract documents of docs/ generated from the code, so that they cannot drift.

`ledger schema --write-docs docs` (or `make docs`) rewrites:

- docs/schemas/inbox.schema.json, journal.schema.json, reject.schema.json: the JSON Schema
  (2020-12) of each topic's records, from the msgspec Structs;
- docs/asyncapi.yaml: its payload schemas and its per-type journal messages; the prose
  (servers, channel descriptions, the inbox examples) stays as written in the file;
- docs/openapi.json: the HTTP API's OpenAPI document, as `ledger api` serves it;
- the blocks of docs/events.md between `<!-- BEGIN generated:NAME -->` and
  `<!-- END generated:NAME -->`: the field tables and the reason codes.

`stale_documents(docs, parser)` names every document that differs from what the code generates;
tests/unit/test_contract_docs.py fails on any.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import yaml

from app.contract_glossary import JOURNAL_TYPE_MEANINGS, REASON_MEANINGS, SHAPE_MEANINGS
from app.contract_glossary import field_meaning as _field_meaning
from ledger import journal_events as je
from ledger.checkpoints import SignedCheckpoint
from ledger.inbox import inbox_json_schema
from ledger.rejections import ReasonCode, RejectRecord

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
# Fields a sealed journal record always has, although the Struct defaults them before sealing.
SEALED_FIELDS = ("seq", "prev_hash", "hash")
SHA256_HEX_PATTERN = "^[0-9a-f]{64}$"  # a hash of the chain: 64 lowercase hex digits
INBOX_PREFIX = "Inbox."
JOURNAL_PREFIX = "Journal."
REJECT_SCHEMA_NAME = "Reject"
JOURNAL_HEADERS = {
    "seq": "The record's `seq` as ASCII digits: a reader finds the journal's tail without "
    "parsing values.",
    "type": "The journal event type.",
    "hash": "The record's `hash`.",
}
REJECT_HEADERS = {
    "number": "The reject's number as ASCII digits.",
    "reason_code": "The reject's reason code.",
}
CHECKPOINT_HEADERS = {
    "number": "The checkpoint's number as ASCII digits: 1, 2, 3, ...",
    "seq": "The journal seq it is of, as ASCII digits.",
}
CHECKPOINT_FIELD_MEANINGS = {
    "seq": "The journal seq the checkpoint is of.",
    "hash": "That journal record's hash: 64 lowercase hex digits.",
    "recorded_at": "That journal record's ledger time (`recorded_at`).",
    "algorithm": "The signature's algorithm: `ed25519`.",
    "signature": "Base64 of the Ed25519 signature over the canonical JSON of "
    '`{"hash","recorded_at","seq"}` (keys sorted, no spaces).',
}
CHECKPOINT_SCHEMA_NAME = "Checkpoint"


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _tag(definition: dict[str, Any]) -> str | None:
    """The record type a definition is tagged with (`enum` from msgspec, `const` once
    described); None for a shape nested in records."""
    node = definition.get("properties", {}).get("type", {})
    if "const" in node:
        return str(node["const"])
    enum = node.get("enum")
    return enum[0] if isinstance(enum, list) and len(enum) == 1 else None


def _describe(schema: dict[str, Any], meanings: Callable[[str, str], str | None]) -> None:
    """Each definition's `type` as its constant tag; each field's meaning before its form."""
    for name, definition in schema["$defs"].items():
        if "properties" not in definition:
            continue  # a closed set of values (an enum): described as a shape
        tag = _tag(definition)
        properties: dict[str, dict[str, Any]] = definition["properties"]
        if tag is not None:
            properties["type"] = {"type": "string", "const": tag}
        for field, node in properties.items():
            meaning = meanings(tag or _snake(name), field)
            if meaning is not None:
                form = node.get("description")
                node["description"] = meaning if form is None else f"{meaning} {form}"


def inbox_contract_schema() -> dict[str, Any]:
    """The decoder's JSON Schema of inbox records with each field's meaning."""
    schema = inbox_json_schema()
    _describe(schema, _field_meaning)
    return schema


def journal_json_schema() -> dict[str, Any]:
    """The JSON Schema of journal records, one definition per type, each field described."""
    schema: dict[str, Any] = msgspec.json.schema(je.JournalEventType)
    _describe(schema, _field_meaning)
    for name, definition in schema["$defs"].items():
        tag = _tag(definition)
        if tag is None:
            definition["description"] = SHAPE_MEANINGS.get(_snake(name), "")
            continue
        properties: dict[str, dict[str, Any]] = definition["properties"]
        definition["description"] = JOURNAL_TYPE_MEANINGS.get(tag, "")
        for field in SEALED_FIELDS:
            properties[field].pop("default", None)
        properties["seq"]["minimum"] = 1
        for field in ("prev_hash", "hash"):
            properties[field]["pattern"] = SHA256_HEX_PATTERN
        definition["required"] = [*definition["required"], *SEALED_FIELDS]
        # A newer ledger may add optional fields: readers ignore the ones they do not know.
        definition["additionalProperties"] = True
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": "ledger.events record",
        "description": "One journal record: canonical JSON (keys sorted, no insignificant "
        "whitespace, UTF-8), tagged by `type`. Decimal figures are strings.",
        **schema,
    }


# Written only for a record over the reject value bound, and for a key that is not UTF-8
# (ledger/application.py); every other field is always written, null when it has no value.
REJECT_OCCASIONAL_FIELDS = frozenset({"value_bytes", "value_sha256", "key_encoding"})


def reject_json_schema() -> dict[str, Any]:
    """The JSON Schema of a reject record (`<prefix>.rejects`, `ledger rejects --format json`),
    from the `RejectRecord` Struct, its reason codes inlined."""
    schema: dict[str, Any] = msgspec.json.schema(RejectRecord)
    definition: dict[str, Any] = schema["$defs"]["RejectRecord"]
    properties: dict[str, dict[str, Any]] = definition["properties"]
    properties["reason_code"] = {"type": "string", "enum": [str(code) for code in ReasonCode]}
    for field, node in properties.items():
        node.pop("default", None)
        node["description"] = REJECT_FIELD_MEANINGS.get(field, "")
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": "ledger.rejects record",
        "description": "One refused inbox record, with the reason. Nothing refused changes a "
        "balance.",
        "type": "object",
        "properties": properties,
        "required": [f for f in properties if f not in REJECT_OCCASIONAL_FIELDS],
        "additionalProperties": True,
    }


REJECT_FIELD_MEANINGS = {
    "number": "The reject's number: 1, 2, 3, ... in the ledger's store.",
    "recorded_at": "The ledger clock when it was refused; null before any input was booked.",
    "reason_code": "Why: a stable code from the closed list.",
    "detail": "A sentence a person can act on.",
    "event_id": "The record's `event_id` when it could be read, even if another field was "
    "refused; null otherwise.",
    "topic": "Where the record came from: the inbox topic, or `file:NAME` for `ledger ingest`.",
    "partition": "Its partition; null when it did not come from Kafka.",
    "offset": "Its offset (for a file, its line number); null when unknown.",
    "key": "Its Kafka key as it arrived: UTF-8 text, or base64 when `key_encoding` is "
    "`base64`; null when it had none.",
    "value": "The record as it arrived; base64 when `value_encoding` is `base64`. A record "
    "over 16 KiB: its first 16 KiB only. Empty for `skipped_by_operator`.",
    "value_encoding": "`utf-8`, or `base64` when the value was not valid UTF-8.",
    "value_bytes": "Present only when `value` is cut: the whole record's length in bytes.",
    "value_sha256": "Present only when `value` is cut: the whole record's SHA-256, hex.",
    "key_encoding": "Present only when the key was not valid UTF-8: `base64` (absent: "
    "`utf-8`). The rejects topic's record is keyed with the key's own bytes.",
}


# -- AsyncAPI ------------------------------------------------------------------------------


def _rereference(node: Any, prefix: str) -> Any:
    """A copy of a JSON Schema node whose `#/$defs/X` now point to AsyncAPI components."""
    if isinstance(node, dict):
        copied = {key: _rereference(value, prefix) for key, value in node.items()}
        reference = copied.get("$ref")
        if isinstance(reference, str) and reference.startswith("#/$defs/"):
            copied["$ref"] = f"#/components/schemas/{prefix}{reference.removeprefix('#/$defs/')}"
        return copied
    if isinstance(node, list):
        return [_rereference(value, prefix) for value in node]
    return node


def _components(schema: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {f"{prefix}{name}": _rereference(d, prefix) for name, d in schema["$defs"].items()}


def _title(tag: str) -> str:
    return tag.replace("_", " ").capitalize()


def _key_binding(description: str, nullable: bool = False) -> dict[str, Any]:
    key_type: Any = ["string", "null"] if nullable else "string"
    return {"kafka": {"key": {"type": key_type, "description": description}}}


def _headers(meanings: dict[str, str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            name: {"type": "string", "description": meaning} for name, meaning in meanings.items()
        },
    }


def _inbox_message(tag: str, name: str, definition: dict[str, Any], old: dict[str, Any]) -> Any:
    """The inbox message: its prose and examples as written, its payload generated."""
    message: dict[str, Any] = {
        "name": tag,
        "title": old.get("title", _title(tag)),
        "summary": old.get("summary", definition.get("description", "")),
        "payload": {"$ref": f"#/components/schemas/{INBOX_PREFIX}{name}"},
    }
    if "account_id" in definition["properties"]:
        message["traits"] = [{"$ref": "#/components/messageTraits/keyedByAccount"}]
    else:
        message["bindings"] = old.get("bindings") or _key_binding("See docs/events.md.")
    if "examples" in old:
        message["examples"] = old["examples"]
    return message


def _journal_message(tag: str, name: str) -> dict[str, Any]:
    return {
        "name": tag,
        "title": _title(tag),
        "summary": JOURNAL_TYPE_MEANINGS.get(tag, ""),
        "payload": {"$ref": f"#/components/schemas/{JOURNAL_PREFIX}{name}"},
        "headers": _headers(JOURNAL_HEADERS),
        "bindings": _key_binding(
            "The event's `account_id`, else its `instrument` or `market`, else its `type`."
        ),
    }


def _reject_message(old: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {
        "name": "reject",
        "title": "Reject",
        "summary": "One refused inbox record, with the reason.",
        "payload": {"$ref": f"#/components/schemas/{REJECT_SCHEMA_NAME}"},
        "headers": _headers(REJECT_HEADERS),
        "bindings": _key_binding("The key of the refused record, as it arrived.", True),
    }
    if "examples" in old:
        message["examples"] = old["examples"]
    return message


def checkpoint_json_schema() -> dict[str, Any]:
    """The JSON Schema of a signed checkpoint (`<prefix>.checkpoints`, `ledger journal
    checkpoint`), from the `SignedCheckpoint` Struct."""
    schema: dict[str, Any] = msgspec.json.schema(SignedCheckpoint)
    definition: dict[str, Any] = schema["$defs"]["SignedCheckpoint"]
    properties: dict[str, dict[str, Any]] = definition["properties"]
    for field, node in properties.items():
        node["description"] = CHECKPOINT_FIELD_MEANINGS[field]
    return {
        "title": "ledger.checkpoints record",
        "description": "The journal's end at one moment, signed by the ledger's Ed25519 key.",
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _checkpoint_message() -> dict[str, Any]:
    return {
        "name": "checkpoint",
        "title": "Signed checkpoint",
        "summary": "The journal's seq, hash and ledger time, signed (docs/pipeline.md).",
        "payload": {"$ref": f"#/components/schemas/{CHECKPOINT_SCHEMA_NAME}"},
        "headers": _headers(CHECKPOINT_HEADERS),
        "bindings": _key_binding("None: checkpoints have no key.", True),
    }


def asyncapi_document(written: dict[str, Any]) -> dict[str, Any]:
    """The AsyncAPI document: `written`'s prose, every schema and message from the code."""
    inbox, journal = inbox_contract_schema(), journal_json_schema()
    reject = {k: v for k, v in reject_json_schema().items() if k != "$schema"}
    old_messages: dict[str, Any] = written.get("components", {}).get("messages", {})
    inbox_tags, journal_tags = _tags(inbox), _tags(journal)
    messages: dict[str, Any] = {
        tag: _inbox_message(tag, name, inbox["$defs"][name], old_messages.get(tag, {}))
        for tag, name in inbox_tags.items()
    }
    messages.update(
        {f"journal.{tag}": _journal_message(tag, name) for tag, name in journal_tags.items()}
    )
    messages["reject"] = _reject_message(old_messages.get("reject", {}))
    messages["checkpoint"] = _checkpoint_message()
    document = dict(written)
    channels = dict(document["channels"])
    channels["inbox"] = {**channels["inbox"], "messages": _message_refs(inbox_tags, "")}
    channels["events"] = {**channels["events"], "messages": _message_refs(journal_tags, "journal.")}
    channels["rejects"] = {**channels["rejects"], "messages": _message_refs({"reject": ""}, "")}
    channels["checkpoints"] = {
        **channels["checkpoints"],
        "messages": _message_refs({"checkpoint": ""}, ""),
    }
    document["channels"] = channels
    document["components"] = {
        "schemas": {
            **_components(inbox, INBOX_PREFIX),
            **_components(journal, JOURNAL_PREFIX),
            REJECT_SCHEMA_NAME: reject,
            CHECKPOINT_SCHEMA_NAME: checkpoint_json_schema(),
        },
        "messageTraits": {
            "keyedByAccount": {"bindings": _key_binding("The record's `account_id`.")}
        },
        "messages": messages,
    }
    return document


def _tags(schema: dict[str, Any]) -> dict[str, str]:
    """Each record type's definition name, by type tag."""
    return {tag: name for name, definition in schema["$defs"].items() if (tag := _tag(definition))}


def _message_refs(tags: dict[str, str], prefix: str) -> dict[str, Any]:
    return {f"{prefix}{tag}": {"$ref": f"#/components/messages/{prefix}{tag}"} for tag in tags}


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line text, so the prose stays readable in the file."""


def _text_representer(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _text_representer)


def _yaml_text(document: dict[str, Any]) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


# -- docs/events.md tables ----------------------------------------------------------------


def _type_text(node: dict[str, Any]) -> str:
    """A JSON Schema node as a short phrase: `string`, `decimal string`, `list of X`, ..."""
    if "$ref" in node:
        return f"`{_snake(node['$ref'].rsplit('/', 1)[1])}`"
    if "anyOf" in node:
        parts = [_type_text(part) for part in node["anyOf"] if part.get("type") != "null"]
        return " or ".join(parts) + " or null"
    if "enum" in node:
        return " or ".join(f"`{value}`" for value in node["enum"])
    kind = node.get("type")
    if kind == "array":
        return f"list of {_type_text(node['items'])}"
    if kind == "object" and "additionalProperties" in node:
        return f"map of string to {_type_text(node['additionalProperties'])}"
    if kind == "string" and node.get("pattern") == SHA256_HEX_PATTERN:
        return "hex string (SHA-256)"
    if kind == "string" and ("pattern" in node or node.get("format") == "decimal"):
        return "decimal string" if node.get("format") != "date-time" else "timestamp"
    if kind == "string" and "format" in node:
        return {"date-time": "timestamp", "date": "date"}.get(node["format"], str(node["format"]))
    return str(kind)


def _field_table(context: str, definition: dict[str, Any], skip: frozenset[str]) -> list[str]:
    lines = ["| field | type | required | meaning |", "| --- | --- | --- | --- |"]
    required = set(definition.get("required", ()))
    for field, node in definition["properties"].items():
        if field in skip:
            continue
        meaning = _field_meaning(context, field) or node.get("description", "")
        mark = "yes" if field in required else "no"
        lines.append(f"| `{field}` | {_type_text(node)} | {mark} | {meaning} |")
    return lines


def _type_sections(schema: dict[str, Any], skip: frozenset[str], summaries: dict[str, str]) -> str:
    """One heading and field table per definition named in `summaries` (by tag or name)."""
    lines: list[str] = []
    for name, definition in schema["$defs"].items():
        tag = _tag(definition)
        key = tag or _snake(name)
        if key not in summaries:
            continue
        lines += [f"#### `{key}`", "", summaries[key], ""]
        if "enum" in definition:  # a closed set of values, not a record
            lines += [", ".join(f"`{value}`" for value in definition["enum"]), ""]
        else:
            lines += [*_field_table(key, definition, skip), ""]
    return "\n".join(lines).rstrip("\n")


INBOX_COMMON = frozenset({"type", "event_id", "occurred_at", "source"})
JOURNAL_COMMON = frozenset(
    {"type", "recorded_at", "causation_id", "account_id", "input_digest", *SEALED_FIELDS}
)


def _common_table(schema: dict[str, Any], fields: frozenset[str]) -> str:
    """The common fields, from the first type that has them all."""
    for name, definition in schema["$defs"].items():
        if fields <= set(definition.get("properties", ())):
            properties = {f: definition["properties"][f] for f in sorted(fields)}
            properties["type"] = {"type": "string"}
            required = [f for f in definition["required"] if f in fields]
            kept = {"properties": properties, "required": required}
            return "\n".join(_field_table(_tag(definition) or name, kept, frozenset()))
    raise ValueError(f"no type has every common field {sorted(fields)}")


def _reason_table() -> str:
    lines = ["| reason code | meaning |", "| --- | --- |"]
    lines += [f"| `{code}` | {REASON_MEANINGS.get(code, '')} |" for code in ReasonCode]
    return "\n".join(lines)


def _reject_table() -> str:
    schema = reject_json_schema()
    required = set(schema["required"])
    lines = ["| field | type | always | meaning |", "| --- | --- | --- | --- |"]
    for field, node in schema["properties"].items():
        always = "yes" if field in required else "no"
        kind = "a reason code (below)" if field == "reason_code" else _type_text(node)
        lines.append(f"| `{field}` | {kind} | {always} | {node['description']} |")
    return "\n".join(lines)


def _inbox_summaries(schema: dict[str, Any]) -> dict[str, str]:
    return {
        tag: definition.get("description", "")
        for definition in schema["$defs"].values()
        if (tag := _tag(definition)) is not None
    }


def _journal_summaries(schema: dict[str, Any]) -> dict[str, str]:
    return {
        tag: JOURNAL_TYPE_MEANINGS.get(tag, "")
        for definition in schema["$defs"].values()
        if (tag := _tag(definition)) is not None
    }


def events_blocks() -> dict[str, str]:
    """The generated blocks of docs/events.md, by name."""
    inbox, journal = inbox_contract_schema(), journal_json_schema()
    return {
        "inbox-common": _common_table(inbox, INBOX_COMMON),
        "inbox-types": _type_sections(inbox, INBOX_COMMON, _inbox_summaries(inbox)),
        "journal-common": _common_table(journal, JOURNAL_COMMON),
        "journal-types": _type_sections(journal, JOURNAL_COMMON, _journal_summaries(journal)),
        "journal-shapes": _type_sections(journal, frozenset(), SHAPE_MEANINGS),
        "reason-codes": _reason_table(),
        "reject-fields": _reject_table(),
    }


_BLOCK = re.compile(
    r"(<!-- BEGIN generated:(?P<name>[a-z-]+) -->\n)(?:.*?\n)?(<!-- END generated:(?P=name) -->)",
    re.DOTALL,
)


def _fill_blocks(text: str, blocks: dict[str, str]) -> str:
    def fill(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in blocks:
            raise ValueError(f"no generated block named {name!r}")
        return f"{match.group(1)}{blocks[name]}\n{match.group(3)}"

    return _BLOCK.sub(fill, text)


# -- docs/cli.md ---------------------------------------------------------------------------


def _argument_rows(parser: argparse.ArgumentParser) -> list[str]:
    """One table row per argument: its name, meaning, environment variable and default, as
    its help gives them: `(env NAME; default VALUE)` for a setting, `$NAME` or
    `(default VALUE)` for another option."""
    rows = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        name = ", ".join(action.option_strings) or (action.metavar or action.dest)
        if action.choices is not None and not action.option_strings:
            name = f"{action.dest} ({', '.join(map(str, action.choices))})"
        help_text = (action.help or "").replace("%%", "%")  # argparse's escape of a %
        setting = _SETTING_HELP.search(help_text)
        if setting is not None:
            meaning, env, default = help_text[: setting.start()], setting[1], setting[2]
            default = "" if default == "none" else default
        else:
            meaning = _DEFAULT_HELP.sub("", help_text)
            variable = _ENV_HELP.search(help_text)
            env = "" if variable is None else variable[1]
            shown = _DEFAULT_HELP.search(help_text)
            default = "" if shown is None else shown[1]
        env_cell = f"`{env}`" if env else ""
        rows.append(f"| `{name}` | {meaning} | {env_cell} | {f'`{default}`' if default else ''} |")
    return rows


_SETTING_HELP = re.compile(r" \(env ([A-Z_]+); default ([^)]*)\)$")
_DEFAULT_HELP = re.compile(r"(?: \(|^)default ([^)]*)\)?$")
_ENV_HELP = re.compile(r"\$([A-Z][A-Z0-9_]+)")


def cli_reference(parser: argparse.ArgumentParser) -> str:
    """Every command of the `ledger` parser, with each argument it takes."""
    lines = ["#### `ledger` (before any command)", "", *_ARGUMENT_HEAD, *_argument_rows(parser)]
    for leaf, summary in _commands(parser):
        lines += ["", f"#### `{leaf.prog}`", "", leaf.description or summary, ""]
        lines += [*_ARGUMENT_HEAD, *_argument_rows(leaf)]
    return "\n".join(lines)


def _commands(parser: argparse.ArgumentParser) -> Iterator[tuple[argparse.ArgumentParser, str]]:
    """Each parser that runs a command, with its one-line help."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                child = action.choices[choice.dest]
                has_commands = any(
                    isinstance(a, argparse._SubParsersAction) for a in child._actions
                )
                if has_commands:
                    yield from _commands(child)
                else:
                    yield child, choice.help or ""


_ARGUMENT_HEAD = ["| argument | meaning | environment | default |", "| --- | --- | --- | --- |"]


# -- every document ------------------------------------------------------------------------


def _json_text(document: Any) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def openapi_document() -> dict[str, Any]:
    from app.api import openapi_schema  # noqa: PLC0415 (only this document needs Litestar)

    return openapi_schema()


SCHEMAS: dict[str, tuple[str, Callable[[], Any]]] = {
    "inbox": ("schemas/inbox.schema.json", inbox_contract_schema),
    "journal": ("schemas/journal.schema.json", journal_json_schema),
    "reject": ("schemas/reject.schema.json", reject_json_schema),
    "openapi": ("openapi.json", openapi_document),
}


def schema_text(which: str) -> str:
    """`ledger schema WHICH`: the same text as its document under docs/."""
    return _json_text(SCHEMAS[which][1]())


def _schema_generator(which: str) -> Callable[[str], str]:
    return lambda _current: schema_text(which)


def _generators(parser: argparse.ArgumentParser) -> dict[str, Callable[[str], str]]:
    """Each document's path under docs/, and how to write it from its current text."""
    generators: dict[str, Callable[[str], str]] = {
        path: _schema_generator(which) for which, (path, _) in SCHEMAS.items()
    }
    generators["asyncapi.yaml"] = lambda text: _yaml_text(asyncapi_document(yaml.safe_load(text)))
    generators["events.md"] = lambda text: _fill_blocks(text, events_blocks())
    generators["cli.md"] = lambda text: _fill_blocks(text, {"commands": cli_reference(parser)})
    return generators


def generated_documents(docs: Path, parser: argparse.ArgumentParser) -> dict[Path, str]:
    """What each generated document should hold, given the hand-written parts in `docs` and
    the `ledger` command's parser (passed in: the command line imports this module)."""
    out: dict[Path, str] = {}
    for relative, generate in _generators(parser).items():
        path = docs / relative
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        out[path] = generate(current)
    return out


def write_documents(docs: Path, parser: argparse.ArgumentParser) -> list[Path]:
    """Rewrite every generated document under `docs`; returns the ones that changed."""
    changed = []
    for path, text in generated_documents(docs, parser).items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed


def stale_documents(docs: Path, parser: argparse.ArgumentParser) -> list[Path]:
    """The generated documents under `docs` that differ from what the code generates."""
    return [
        path
        for path, text in generated_documents(docs, parser).items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]


def undocumented() -> list[str]:
    """Every field, journal type, nested shape and reason code the glossary gives no meaning."""
    missing = [f"reason code {code}" for code in ReasonCode if code not in REASON_MEANINGS]
    missing += [
        f"reject field {field}"
        for field in reject_json_schema()["properties"]
        if field not in REJECT_FIELD_MEANINGS
    ]
    for schema in (inbox_contract_schema(), journal_json_schema()):
        for name, definition in schema["$defs"].items():
            context = _tag(definition) or _snake(name)
            missing += [
                f"field {context}.{field}"
                for field in definition.get("properties", ())
                if _field_meaning(context, field) is None
            ]
    for name, definition in journal_json_schema()["$defs"].items():
        tag = _tag(definition)
        if tag is not None and tag not in JOURNAL_TYPE_MEANINGS:
            missing.append(f"journal type {tag}")
        if tag is None and _snake(name) not in SHAPE_MEANINGS:
            missing.append(f"shape {_snake(name)}")
    return missing
