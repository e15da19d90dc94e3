"""What jsonargparse says about a config it cannot parse, told in one line: the key, what is wrong, what to give.

jsonargparse explains a bad value in a class's options over a page: every type of the union it tried, the value
again, nested once per class. :func:`explain_parse_error` reads that explanation as the tree its indentation draws,
follows it down to the one problem (an option the class does not take, a class that does not exist, a value of
the wrong type, a required key left out) and says it in a line, with the closest name when a name was misspelled
(``did you mean --trainer.max_epochs?``). An explanation it cannot read is folded into one line as it is.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import pkgutil
import re
import sys
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from zoo.cli.errors import one_line

__all__ = ["explain_parse_error", "option_names", "shape_problem", "suggest_class_path"]

#: the sections whose options sit under ``init_args``
_CLASS_SECTIONS = ("model", "data", "optimizer", "lr_scheduler", "trainer.callbacks", "trainer.logger",
                   "trainer.plugins", "trainer.profiler", "trainer.strategy", "trainer.accelerator", "reference")  # fmt: skip
#: the base classes jsonargparse falls back to when a section names no class_path
_BASES = {"BaseTask": "a task, e.g. zoo.tasks.ClassificationTask",
          "LightningDataModule": "a DataModule, e.g. zoo.data.FashionMNISTDataModule",
          "Optimizer": "an optimiser, e.g. torch.optim.SGD",
          "LRScheduler": "a schedule, e.g. torch.optim.lr_scheduler.StepLR",
          "Callback": "a callback, e.g. zoo.callbacks.Filters",
          "Logger": "a logger, e.g. lightning.pytorch.loggers.CSVLogger"}  # fmt: skip
#: the keys of a class in a config
_CLASS_KEYS = ["class_path", "init_args", "dict_kwargs"]
#: the sections holding a list of classes, whose items have no key of their own
_LIST_SECTIONS = ("trainer.callbacks", "trainer.plugins")
#: what to give for a required key left out
_REQUIRED_HINTS = {"model": ": name the task as model.class_path (e.g. zoo.tasks.ClassificationTask) with its "
                   "init_args", "data": ": name the DataModule as data.class_path (e.g. zoo.data.MNISTDataModule) "
                   "with its init_args"}  # fmt: skip
#: constructor arguments that the command line fills, not the user
_FILLED = {"self", "params", "optimizer"}

_PARSER_KEY = re.compile(r'^Parser key "([^"]+)":\s*(.*)$')
_PROBLEM = re.compile(r"^- Problem with given class_path '([^']+)':\s*(.*)$")
_NOT_ACCEPTED = re.compile(r"Option '([^']+)' is not accepted")
_NO_ATTRIBUTE = re.compile(r"module '([^']+)' has no attribute '([^']+)'")
_NO_MODULE = re.compile(r"No module named '([^']+)'")
_EXPECTED = re.compile(r"^-?\s*Expected an? (.+?)(?:\. Got value: (.*))?$")
_REQUIRED = re.compile(r"the following arguments are required: (.+)$")
_NOT_SUBCLASS = re.compile(r"Import path (?:(\S+) )?does not correspond to a subclass of (\S+)")
_UNKNOWN_KEY = re.compile(r"(?:does not accept option '([^']+)'|unrecognized arguments: (.+))")
_GIVEN = re.compile(r"^Given value: (.*)$")


@dataclass
class _Node:
    text: str
    children: list[_Node] = field(default_factory=list)


def _tree(message: str) -> list[_Node]:
    """The lines of ``message`` as a tree by their indentation."""
    roots: list[_Node] = []
    stack: list[tuple[int, _Node]] = []
    for line in message.splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        node = _Node(line.strip())
        while stack and stack[-1][0] >= indent:
            stack.pop()
        (stack[-1][1].children if stack else roots).append(node)
        stack.append((indent, node))
    return roots


@dataclass
class _Problem:
    """One problem found: where (``key``, the ``class_path`` configured there), what (``kind``, ``detail``), and
    how deep in the explanation (a deeper one is more precise)."""

    key: str
    class_path: str | None
    kind: str
    detail: tuple[str, ...] = ()
    depth: int = 0
    owner: str | None = None


#: which problem to tell when the explanation holds several (one per type of a union): lower first
_RANK = {"unknown_option": 0, "unknown_class": 0, "required": 0, "type": 1, "not_subclass": 2}
_TYPE_WORDS = {"NoneType": "null", "int": "a whole number", "float": "a number", "str": "a string",
               "bool": "true or false", "dict": "a mapping of keys", "list": "a list",
               "dot import path string": "a class's import path", "Iterable": "a list"}  # fmt: skip


def _type_names(texts: Sequence[str]) -> str:
    """``<class 'float'>`` as ``a number``; the values of every ``typing.Literal[...]`` as one list."""
    literals: list[str] = []
    names: list[str] = []
    for text in texts:
        text = text.strip()
        literal = re.match(r"typing\.Literal\[(.*)\]$", text)
        if literal:
            literals += [value.strip() for value in literal.group(1).split(",")]
            continue
        plain = re.match(r"<class '(?:[\w.]+\.)?(\w+)'>$", text)
        name = plain.group(1) if plain else text.split(":")[0]
        names.append(_TYPE_WORDS.get(name, name))
    if literals:
        names.insert(0, f"one of {', '.join(dict.fromkeys(literals))}")
    named = [n for n in dict.fromkeys(names) if n != "null"] or ["null"]
    if "a number" in named and "a class's import path" in named:  # a float or a tensor (an optimiser's lr)
        named.remove("a class's import path")
    return " or ".join(named)


def _nested_key(key: str, class_path: str | None, inner: str) -> str:
    if not key:
        return inner
    return f"{key}.init_args.{inner}" if class_path and key != "reference" else f"{key}.{inner}"


def _candidates(
    nodes: Sequence[_Node],
    key: str,
    class_path: str | None,
    depth: int,
    given: str = "?",
    owner: str | None = None,
) -> list[_Problem]:
    """Every problem below ``nodes``, for the option ``key`` (of the class ``owner``) configured as ``class_path``,
    given ``given``."""
    found: list[_Problem] = []
    given = next((m.group(1) for n in nodes if (m := _GIVEN.match(n.text)) is not None), given)
    expected: list[str] = []
    for node in nodes:
        text = node.text
        if (match := _PARSER_KEY.match(text)) is not None:
            children = [_Node(match.group(2)), *node.children] if match.group(2) else node.children
            nested = _nested_key(key, class_path, match.group(1))
            found += _candidates(children, nested, None, depth + 1, owner=class_path or owner)
        elif (match := _PROBLEM.match(text)) is not None:
            children = [_Node(match.group(2)), *node.children] if match.group(2) else node.children
            found += _candidates(children, key, match.group(1), depth + 1, owner=owner)
        elif text == "Errors:" or text.startswith("- Does not validate"):
            found += _candidates(node.children, key, class_path, depth, given, owner)
        elif (match := _NOT_ACCEPTED.search(text)) is not None:
            found.append(_Problem(key, class_path, "unknown_option", (match.group(1),), depth))
        elif (match := _NO_ATTRIBUTE.search(text) or _NO_MODULE.search(text)) is not None:
            found.append(_Problem(key, class_path, "unknown_class", match.groups(), depth))
        elif (match := _REQUIRED.search(text)) is not None:
            found.append(_Problem(key, class_path, "required", (match.group(1),), depth))
        elif (match := _NOT_SUBCLASS.search(text)) is not None:
            detail = (match.group(1) or given, match.group(2))
            found.append(_Problem(key, class_path, "not_subclass", detail, depth))
        elif (match := _EXPECTED.match(text)) is not None and not text.startswith("- Expected a path but"):
            if match.group(2) is None:
                expected.append(match.group(1))
            else:
                detail = (_type_names([match.group(1)]), match.group(2))
                found.append(_Problem(key, class_path, "type", detail, depth))
    if expected:
        found.append(_Problem(key, class_path, "type", (_type_names(expected), given), depth))
    for problem in found:
        problem.owner = problem.owner or owner
    return found


def _problem_in(nodes: Sequence[_Node]) -> _Problem | None:
    """The problem to tell: the most telling kind, then the deepest."""
    found = _candidates(nodes, "", None, 0)
    # "must be null" says nothing: a section that takes a class also takes null, to leave it out
    return min(found, key=lambda p: (_RANK[p.kind] + 2 * (p.detail[:1] == ("null",)), -p.depth), default=None)


def option_names(class_path: str) -> list[str]:
    """The options (constructor arguments) of the class ``class_path`` names; empty when it cannot be imported."""
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
        parameters = inspect.signature(cls).parameters.values()
    except (ImportError, AttributeError, ValueError, TypeError):
        return []
    return [
        p.name
        for p in parameters
        if p.name not in _FILLED and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def suggest_class_path(class_path: str) -> str | None:
    """The importable class path closest to a misspelled one (``zoo.tasks.ClasificationTask`` gives
    ``zoo.tasks.ClassificationTask``, ``torch.optim.Adamm`` gives ``torch.optim.Adam``), or None."""
    parts = class_path.split(".")
    if len(parts) > 1 and importlib.util.find_spec(parts[0]) is None:  # the top module itself is misspelled
        tops = sorted({name.split(".")[0] for name in sys.modules if not name.startswith("_")})
        close = difflib.get_close_matches(parts[0], tops, n=1, cutoff=0.6)
        fixed = ".".join([close[0], *parts[1:]]) if close else None
        return fixed if fixed is None or fixed == class_path else suggest_class_path(fixed) or fixed
    for depth in range(len(parts) - 1, 0, -1):  # the longest prefix that imports
        module_name = ".".join(parts[:depth])
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        wrong = parts[depth]
        names = [n for n in dir(module) if not n.startswith("_")]
        if hasattr(module, "__path__"):
            names += [
                info.name for info in pkgutil.iter_modules(module.__path__) if not info.name.startswith("_")
            ]
        close = difflib.get_close_matches(wrong, names, n=1, cutoff=0.6)
        if not close:
            return None
        candidate = ".".join([*parts[:depth], close[0], *parts[depth + 1 :]])
        return candidate if candidate != class_path else None
    return None


def _flag(key: str) -> str:
    return f"--{key}"


def _did_you_mean(given: str, names: Collection[str]) -> str:
    close = difflib.get_close_matches(given, list(names), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def _unknown_key(key: str, known: Collection[str]) -> str:
    """``--key`` is not an option, with the closest known key."""
    parts = key.split(".")
    split = [k.split(".") for k in known if not k.endswith(".help")]
    for depth, part in enumerate(parts):
        level = sorted({k[depth] for k in split if k[:depth] == parts[:depth] and len(k) > depth})
        if part in level:
            continue
        close = difflib.get_close_matches(part, level, n=1, cutoff=0.6)
        if close:
            fixed = [*parts[:depth], close[0], *parts[depth + 1 :]]
            hint = fixed if fixed in split or depth == len(parts) - 1 else [*parts[:depth], close[0]]
            return f"{_flag(key)} is not an option; did you mean {_flag('.'.join(hint))}?"
        break
    return f"{_flag(key)} is not an option (`zoo fit --recipe NAME --help` lists them)"


def _say(problem: _Problem) -> str:
    key, class_path, kind, detail = problem.key, problem.class_path, problem.kind, problem.detail
    cls = (class_path or "").rpartition(".")[2]
    # a class in a list (trainer.callbacks) has no key of its own: its section and its class name it
    section = key.split(".init_args.")[0]
    where = f"{_flag(section)}: {class_path or problem.owner}" if section in _LIST_SECTIONS else None
    if kind == "unknown_option":
        option = detail[0].split(".")[0]
        if cls in _BASES:
            return f"{_flag(key)} names no class_path: give {_BASES[cls]}, as {key}.class_path"
        options = option_names(class_path or "")
        hint = _did_you_mean(option, options)
        if not hint and options:
            hint = f"; it takes {', '.join(options[:8])}{', ...' if len(options) > 8 else ''}"
        at = where or f"{_flag(_nested_key(key, class_path, option))}: {class_path}"
        return f"{at} takes no option '{option}'{hint}"
    if kind == "unknown_class":
        suggestion = suggest_class_path(class_path or "") if class_path else None
        hint = f"; did you mean {suggestion}?" if suggestion else "; give a class's full import path"
        missing = f"no module {detail[0]}" if len(detail) == 1 else f"{detail[0]} has no {detail[1]}"
        return f"{_flag(key)}: no class {class_path} ({missing}){hint}"
    if kind == "not_subclass":
        return f"{_flag(key)}: {detail[0]} is not a subclass of {detail[1]}; name a class that is"
    if kind == "required":
        missing = re.sub(r"^(fit|validate|test|predict)\.", "", detail[0].split(", ")[0])
        if where:
            return f"{where} needs {missing}, which is not given"
        inner = _nested_key(key, class_path, missing)
        return f"{_flag(inner)} is required but not given{_REQUIRED_HINTS.get(inner, '')}"
    wanted, value = detail
    if where and "." in key:
        return f"{where}: {key.rpartition('.')[2]} must be {wanted}, got {value}"
    return f"{_flag(key)} must be {wanted}, got {value}"


def shape_problem(config: object, known_keys: Collection[str]) -> str | None:
    """The first key of a config file that is misplaced or misspelled: one the parser does not take (``omdel:``),
    or one beside ``class_path`` and ``init_args`` that is a misspelling of them (``clas_spath:``), which jsonargparse
    reports as a problem with the whole section, or with another section altogether.

    Args:
        config: a config file's contents (a recipe).
        known_keys: the parser's keys; those with a ``.help`` key beside them take a class.

    Returns:
        One line naming the key and the key meant, or None when the keys are all in their places.
    """
    if not isinstance(config, Mapping) or not known_keys:
        return None
    sections = {k.removesuffix(".help") for k in known_keys if k.endswith(".help")} - {"reference"}
    return _shape_in(config, "", known_keys, sections)


def _shape_in(node: Mapping[str, Any], prefix: str, known: Collection[str], sections: set[str]) -> str | None:
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        if not isinstance(key, str) or key.startswith("__"):  # jsonargparse's own (__path__)
            continue
        if dotted not in known and not any(k.startswith(f"{dotted}.") for k in known):
            return _unknown_key(dotted, known)
        if dotted in sections:
            for item in value if isinstance(value, list) else [value]:
                wrong = [k for k in item if k not in _CLASS_KEYS] if isinstance(item, Mapping) else []
                if wrong:
                    return _not_a_class_key(dotted, str(wrong[0]), item)
        elif isinstance(value, Mapping) and any(
            k.startswith(f"{dotted}.") and not k.endswith(".help") for k in known
        ):
            found = _shape_in(value, f"{dotted}.", known, sections)
            if found is not None:
                return found
    return None


def _not_a_class_key(section: str, key: str, item: Mapping[str, Any]) -> str:
    """``key`` beside a class's ``class_path`` and ``init_args``: a misspelling of those, or an option of the class
    that belongs under ``init_args``."""
    close = difflib.get_close_matches(key, _CLASS_KEYS, n=1, cutoff=0.6)
    if close:
        return f"{_flag(section)}: '{key}' is not a key of a class; did you mean {close[0]}?"
    class_path = item.get("class_path")
    if isinstance(class_path, str) and key in option_names(class_path):
        return f"{_flag(section)}: '{key}' is an option of {class_path}: put it under init_args"
    return f"{_flag(section)}: '{key}' is not a key of a class, which takes class_path and init_args"


def explain_parse_error(
    message: str, known_keys: Collection[str] = (), configs: Sequence[object] = ()
) -> str:
    """One line for jsonargparse's explanation of a config it cannot parse.

    Args:
        message: jsonargparse's message (``str`` of its ``ArgumentError``), over as many lines as it takes.
        known_keys: the parser's keys (``trainer.max_epochs``, ``model``, ...), to suggest one for an unknown key.
        configs: the contents of the config files parsed (the recipe): a key misplaced in one of them is told
            first, as the cause of what jsonargparse reports (:func:`shape_problem`).

    Returns:
        ``--key``, what is wrong with it, and what to give instead; jsonargparse's message folded into one line
        when it is not one of the problems recognised here.
    """
    for config in configs:
        found = shape_problem(config, known_keys)
        if found is not None:
            return one_line(found)
    unknown = _UNKNOWN_KEY.search(message)
    if unknown:
        option = unknown.group(1) or unknown.group(2).split()[0]
        if option.startswith("--") or unknown.group(1):
            return _unknown_key(option.removeprefix("--").split("=")[0], known_keys)
        return f"unexpected argument {option!r}: options are given as --key value"
    problem = _problem_in(_tree(message))
    if problem is None:
        return one_line(message)
    return one_line(_say(problem))
