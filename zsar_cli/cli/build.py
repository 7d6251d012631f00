"""Typer commands whose options come from the stage config dataclasses.

A command function declares its own parameters (inputs, `-o`, `--shard`, `--force`, anything that
is not a setting) as usual, plus one parameter per config it needs, annotated with the config
class:

    @config_command
    def encode(frames: ..., output: ..., config: EncodeConfig, shard: ... = None) -> None:

`config_command` replaces `config` by one typer option per field of EncodeConfig (nested config
dataclasses such as ClassifyConfig.prompts flattened), each with the field's default, help, flags
and type (zsar_cli.options), and calls the function with the built EncodeConfig. Choices become
`Literal` types, so a bad choice is a usage error (exit 2) that lists them; tuple fields are
repeatable options; `Opt.parse` fields are typed as text and parsed here (a ValueError is a usage
error). Ranges and cross-field rules stay with `config.validated()` (exit 1, one line).

`Annotated[LVLMChoiceConfig, Fields("self_res", "shortlist")]` offers only some fields (dotted
paths reach into nested configs); the others keep their defaults.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin

import typer

from zsar_cli.options import ConfigBase, Opt, flag_of, option_of

F = TypeVar("F", bound=Callable[..., Any])


class Fields:
    """Which fields of a config parameter become options (default: every `cli` field)."""

    def __init__(self, *only: str) -> None:
        self.only = only

    def offers(self, path: str) -> bool:
        return not self.only or any(path == p or path.startswith(p + ".") for p in self.only)

    def reaches(self, path: str) -> bool:
        """Whether `path` (a nested config) holds an offered field."""
        return self.offers(path) or any(p.startswith(path + ".") for p in self.only)


@dataclass(frozen=True)
class Leaf:
    """One option: the config field at `path` (e.g. ("prompts", "templates"))."""

    path: tuple[str, ...]
    field: dataclasses.Field[Any]
    option: Opt
    hint: Any  # the field's type

    @property
    def name(self) -> str:
        return self.path[-1]

    def parameter(self) -> inspect.Parameter:
        default = _field_default(self.field)
        if self.option.parse is not None:
            cli_type: Any = str
            default = self.option.cli_default
        else:
            cli_type = _cli_type(self.hint, self.option)
            if isinstance(default, tuple):
                default = list(default)
        if self.option.required:
            default = inspect.Parameter.empty
        info = typer.Option(*self.option.flags, help=self.option.help, metavar=self.option.metavar)
        return inspect.Parameter(
            self.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=default,
            annotation=Annotated[cli_type, info],
        )

    def value(self, given: Any) -> Any:
        """The command-line value as the field's value."""
        if given is None:
            return None
        if self.option.parse is not None:
            try:
                return self.option.parse(given)
            except ValueError as exc:
                hint = flag_of(self.field)
                raise typer.BadParameter(f"{given!r}: {exc}", param_hint=hint) from None
        if isinstance(given, list):
            return tuple(given)
        return given


@dataclass(frozen=True)
class ConfigParameter:
    """A command parameter annotated with a config class: its options, and how to build it."""

    cls: type[ConfigBase]
    leaves: tuple[Leaf, ...]

    @classmethod
    def of(cls, config_cls: type[ConfigBase], fields: Fields) -> ConfigParameter:
        return cls(config_cls, tuple(_leaves(config_cls, (), fields)))

    def build(self, values: dict[str, Any]) -> ConfigBase:
        """The config from the command's values (its leaves are popped from `values`)."""
        given = {leaf.path: leaf.value(values.pop(leaf.name)) for leaf in self.leaves}
        return _build(self.cls, (), given)


def config_command(fn: F) -> F:
    """The command `fn` with each config-class parameter expanded into that config's options."""
    hints = typing.get_type_hints(fn, include_extras=True)
    parameters: list[inspect.Parameter] = []
    configs: dict[str, ConfigParameter] = {}
    for param in inspect.signature(fn).parameters.values():
        hint = hints.get(param.name, param.annotation)
        config_cls, fields = _config_class(hint)
        if config_cls is None:
            parameters.append(param.replace(annotation=hint, kind=inspect.Parameter.KEYWORD_ONLY))
            continue
        configs[param.name] = ConfigParameter.of(config_cls, fields)
        parameters.extend(leaf.parameter() for leaf in configs[param.name].leaves)
    names = [p.name for p in parameters]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise TypeError(f"{fn.__name__}: options named twice: {', '.join(clashes)}")

    @functools.wraps(fn)
    def command(**values: Any) -> Any:
        for name, config in configs.items():
            values[name] = config.build(values)
        return fn(**values)

    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in parameters}
    command.config_parameters = configs  # type: ignore[attr-defined]  # for tests
    return command  # type: ignore[return-value]


def config_parameters(command: Callable[..., Any]) -> Mapping[str, ConfigParameter]:
    """The config parameters of a `config_command` (empty for a plain command)."""
    return getattr(command, "config_parameters", {})


def _config_class(hint: Any) -> tuple[type[ConfigBase] | None, Fields]:
    fields = Fields()
    if get_origin(hint) is Annotated:
        hint, *extras = get_args(hint)
        fields = next((e for e in extras if isinstance(e, Fields)), fields)
    if isinstance(hint, type) and issubclass(hint, ConfigBase):
        return hint, fields
    return None, fields


def _leaves(cls: type[ConfigBase], prefix: tuple[str, ...], fields: Fields) -> list[Leaf]:
    hints = typing.get_type_hints(cls)
    leaves: list[Leaf] = []
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        path = (*prefix, field.name)
        dotted = ".".join(path)
        hint = hints[field.name]
        if isinstance(hint, type) and issubclass(hint, ConfigBase):
            if fields.reaches(dotted):
                leaves.extend(_leaves(hint, path, fields))
            continue
        option = option_of(field)
        if option is None:
            raise TypeError(f"{cls.__name__}.{field.name}: declare it with zsar_cli.options.opt")
        if option.cli and fields.offers(dotted):
            leaves.append(Leaf(path, field, option, hint))
    return leaves


def _build(
    cls: type[ConfigBase], prefix: tuple[str, ...], given: dict[tuple[str, ...], Any]
) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        path = (*prefix, field.name)
        hint = hints[field.name]
        if isinstance(hint, type) and issubclass(hint, ConfigBase):
            if any(p[: len(path)] == path for p in given):
                kwargs[field.name] = _build(hint, path, given)
        elif path in given:
            kwargs[field.name] = given[path]
    return cls(**kwargs)


def _field_default(field: dataclasses.Field[Any]) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    raise TypeError(f"config field {field.name} has no default")


def _cli_type(hint: Any, option: Opt) -> Any:
    """The typer type of a field: str | None stays as is; choices → Literal; tuple → list."""
    args = get_args(hint)
    optional = type(None) in args
    if optional:
        (hint,) = [a for a in args if a is not type(None)]
    if get_origin(hint) is tuple:
        item = _choice(get_args(hint)[0], option.choices)
        cli: Any = list[item]  # type: ignore[valid-type]
    else:
        cli = _choice(hint, option.choices)
    return cli | None if optional else cli


def _choice(hint: Any, choices: Sequence[str] | None) -> Any:
    return Literal[tuple(choices)] if choices is not None else hint  # type: ignore[valid-type]
