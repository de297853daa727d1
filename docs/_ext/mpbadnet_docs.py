"""Sphinx glue between the MP-BADNet spec and its two implementations.

What this extension does (configured in ``docs/conf.py``):

* **Spec sources.** ``spec/`` lives at the repository root, outside the Sphinx source
  directory. At ``config-inited`` the files are mirrored into ``mpbadnet_spec_target``
  (``docs/_generated/spec``): changed files are rewritten, stale ones removed, unchanged
  ones left alone so that incremental builds stay incremental. Line numbers are kept, so a
  warning at ``_generated/spec/05-arithmetic.md:40`` is line 40 of ``spec/05-arithmetic.md``.
* **Spec to code.** Every ``Implemented by:`` line of the spec names objects such as
  ```refimpl.arithmetic.mul```. At ``source-read`` those names become the ``spec-impl``
  role, which renders a link to the API entry and to the highlighted source of the refimpl
  object and of its ``fast`` twin (or says that fast re-exports the very same object).
  A name that does not exist, or that is missing from the API reference, is a warning.
* **Code to spec.** Every public docstring opens with ``§<number> <title>``. An
  ``autodoc-process-docstring`` hook turns that anchor into ``:ref:`` to the spec target
  ``sec-<number with dashes>``; an unknown target is Sphinx's usual "undefined label"
  warning, and a title that differs from the spec heading is a warning of this extension.
* **Re-exports.** The ``reexports`` directive lists the members of a ``fast`` module that
  are the very same objects as refimpl's (documented once, on the refimpl page).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.environment import BuildEnvironment
from sphinx.errors import PycodeError
from sphinx.pycode import ModuleAnalyzer
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective, SphinxRole

try:  # the [source] links reuse viewcode's own anchor node
    from sphinx.ext.viewcode import viewcode_anchor
except ImportError:  # pragma: no cover - older Sphinx
    viewcode_anchor = None

logger = logging.getLogger(__name__)

#: The contract's anchor: the first docstring line, ``§5.1 Multiplication, step 2: ...``.
ANCHOR = re.compile(r"^§(?P<number>\d+(?:\.\d+)*) (?P<title>[^:,]+)")
#: ``Implemented by:`` at the start of a line, optionally emphasised.
IMPLEMENTED_BY = re.compile(r"^(?P<lead>\s*[*_]{0,2}Implemented by:[*_]{0,2}:?)(?P<rest>.*)$")
#: A code fence opening or closing line (``` or ~~~, optionally with an info string).
FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,}|:{3,})(?P<info>.*)$")
CODE_DIRECTIVES = ("{code-block}", "{code}", "{sourcecode}", "{literalinclude}", "{math}")

ENV_ANCHORS = "mpbadnet_anchor_uses"
ENV_LISTED = "mpbadnet_implemented_by"
#: ``|x|`` written as an absolute value: reST would read it as a substitution reference.
BARS = re.compile(r"(?<![\\|\w])\|(?P<inner>[^|`\s](?:[^|`]*[^|`\s])?)\|(?![\w|])")
#: Inline literals and interpreted text, left untouched by :func:`escape_absolute_values`.
INLINE_CODE = re.compile(r"(``.+?``|`[^`]*`)")


def spec_label(number: str) -> str:
    """The MyST target of spec section ``number``: ``5.1`` -> ``sec-5-1``."""
    return "sec-" + number.replace(".", "-")


def current_docname(env: BuildEnvironment) -> str:
    current = getattr(env, "current_document", None)
    docname = getattr(current, "docname", "") if current is not None else ""
    return docname or str(getattr(env, "docname", ""))


# -- spec sources ---------------------------------------------------------------------------


def _spec_files(source: Path) -> Iterator[Path]:
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if path.is_file() and not any(part.startswith((".", "__")) for part in relative.parts):
            yield relative


def mirror_spec(app: Sphinx, config: Config) -> None:
    """Mirror ``spec/`` into the source directory, touching only files that changed."""
    confdir = Path(app.confdir)
    source = (confdir / config.mpbadnet_spec_source).resolve()
    target = (confdir / config.mpbadnet_spec_target).resolve()
    target.mkdir(parents=True, exist_ok=True)
    wanted: set[Path] = set()
    if source.is_dir():
        for relative in _spec_files(source):
            wanted.add(relative)
            data = (source / relative).read_bytes()
            destination = target / relative
            if not destination.is_file() or destination.read_bytes() != data:
                destination.parent.mkdir(parents=True, exist_ok=True)
                destination.write_bytes(data)
    else:
        logger.warning("mpbadnet: spec directory %s does not exist", source, type="mpbadnet", subtype="spec")
    for path in sorted(target.rglob("*"), reverse=True):
        relative = path.relative_to(target)
        if path.is_file() and relative not in wanted:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


# -- spec -> code -----------------------------------------------------------------------------


def _is_spec_document(app: Sphinx, docname: str) -> bool:
    prefix = str(app.config.mpbadnet_spec_target).strip("/") + "/"
    return docname.startswith(prefix)


def _name_pattern(app: Sphinx) -> re.Pattern[str]:
    packages = "|".join(re.escape(package) for package in app.config.mpbadnet_implementations)
    return re.compile(rf"`(?P<name>(?:{packages})(?:\.\w+)+)(?:\(\))?`")


def _twin(name: str, package: str) -> str:
    """``refimpl.arithmetic.mul`` in ``package``: ``fast.arithmetic.mul``."""
    return package + "." + name.split(".", 1)[1]


def rewrite_implemented_by(app: Sphinx, text: str, pattern: re.Pattern[str]) -> str:
    """Turn the names of every ``Implemented by:`` line (outside code) into ``spec-impl`` roles."""
    reference = app.config.mpbadnet_implementations[0]
    lines = text.split("\n")
    fences: list[tuple[str, bool]] = []
    for index, line in enumerate(lines):
        fence = FENCE.match(line)
        if fences and fences[-1][1]:  # inside a code fence: only its closing line matters
            opening = fences[-1][0]
            if fence and not fence["info"].strip() and fence["fence"].startswith(opening):
                fences.pop()
            continue
        if fence:
            info = fence["info"].strip()
            if fences and not info and fence["fence"][0] == fences[-1][0][0]:
                fences.pop()
            else:
                is_code = fence["fence"][0] != ":" and (
                    not info.startswith("{") or info.startswith(CODE_DIRECTIVES)
                )
                fences.append((fence["fence"], is_code))
            continue
        match = IMPLEMENTED_BY.match(line)
        if not match:
            continue
        names = {found["name"] for found in pattern.finditer(match["rest"])}

        def replace(found: re.Match[str], names: set[str] = names) -> str:
            name = found["name"]
            twins_named = name.startswith(reference + ".") and any(
                _twin(name, package) in names for package in app.config.mpbadnet_implementations[1:]
            )
            return f"{{{'spec-impl-one' if twins_named else 'spec-impl'}}}`{name}`"

        lines[index] = match["lead"] + pattern.sub(replace, match["rest"])
    return "\n".join(lines)


def on_source_read(app: Sphinx, docname: str, source: list[str]) -> None:
    if _is_spec_document(app, docname):
        source[0] = rewrite_implemented_by(app, source[0], _name_pattern(app))


class Unresolved(Exception):
    """An ``Implemented by`` name that cannot be imported."""


def resolve(name: str) -> tuple[str, str, Any]:
    """Import ``name``: its module, its qualified name inside that module, and the object."""
    parts = name.split(".")
    for split in range(len(parts) - 1, 0, -1):
        modname = ".".join(parts[:split])
        try:
            module = importlib.import_module(modname)
        except ModuleNotFoundError as error:
            if error.name is not None and (modname == error.name or modname.startswith(error.name + ".")):
                continue
            raise Unresolved(f"importing {modname} failed: {error}") from error
        except Exception as error:
            raise Unresolved(f"importing {modname} failed: {error!r}") from error
        obj: Any = module
        for attribute in parts[split:]:
            if not hasattr(obj, attribute):
                raise Unresolved(f"{modname} has no attribute {'.'.join(parts[split:])}")
            obj = getattr(obj, attribute)
        return modname, ".".join(parts[split:]), obj
    raise Unresolved(f"no module of {name} can be imported")


def _source_of(modname: str, qualname: str, obj: Any) -> tuple[str, str]:
    """The module and the qualified name under which viewcode shows ``obj``'s source."""
    defining = getattr(inspect.unwrap(obj), "__module__", None) if callable(obj) else None
    defined_as = getattr(obj, "__qualname__", None)
    if isinstance(defining, str) and isinstance(defined_as, str) and "<" not in defined_as:
        return defining, defined_as
    return modname, qualname


def _api_link(env: BuildEnvironment, name: str, shown: str | None = None) -> addnodes.pending_xref:
    reference = addnodes.pending_xref(
        "",
        refdomain="py",
        reftype="obj",
        reftarget=name,
        refexplicit=shown is not None,
        refwarn=False,
        refdoc=current_docname(env),
    )
    reference["py:module"] = None
    reference["py:class"] = None
    reference["mpbadnet_implemented_by"] = True
    text = name if shown is None else shown
    reference += nodes.literal(text, text, classes=["xref", "py", "py-obj"])
    return reference


def _source_link(env: BuildEnvironment, modname: str, qualname: str) -> list[nodes.Node]:
    """viewcode's ``[source]`` link, for the classes and functions it has an anchor for."""
    if viewcode_anchor is None:
        return []
    try:
        analyzer = ModuleAnalyzer.for_module(modname)
        analyzer.find_tags()
    except PycodeError:
        return []
    if qualname not in analyzer.tags:
        return []
    page = "_modules/" + modname.replace(".", "/")
    return [nodes.Text(" "), viewcode_anchor(reftarget=page, refid=qualname, refdoc=current_docname(env))]


class ImplementedByRole(SphinxRole):
    """``{spec-impl}`refimpl.x.y```: links to refimpl.x.y and to its twins in the other packages."""

    with_twins: ClassVar[bool] = True

    def run(self) -> tuple[list[nodes.Node], list[nodes.system_message]]:
        name = self.text.strip().removesuffix("()")
        packages: list[str] = list(self.config.mpbadnet_implementations)
        result: list[nodes.Node] = []
        self._depend_on(name)
        try:
            modname, qualname, obj = resolve(name)
        except Unresolved as error:
            logger.warning(
                "mpbadnet: Implemented by names %s, which does not exist (%s)",
                name,
                error,
                location=self.get_location(),
                type="mpbadnet",
                subtype="implemented_by",
            )
            return [nodes.literal(name, name)], []
        result.append(_api_link(self.env, name))
        result.extend(_source_link(self.env, *_source_of(modname, qualname, obj)))
        if self.with_twins and name.startswith(packages[0] + "."):
            for package in packages[1:]:
                result.extend(self._twin(name, obj, package))
        return result, []

    def _depend_on(self, name: str) -> None:
        """Re-read this spec page when the modules it names change (incremental builds)."""
        for package in self.config.mpbadnet_implementations:
            modname = package + "." + name.split(".")[1] if "." in name else package
            module = sys.modules.get(modname)
            path = getattr(module, "__file__", None)
            if path is None:
                try:
                    spec = importlib.util.find_spec(modname)
                except (ImportError, ValueError):
                    spec = None
                path = spec.origin if spec is not None else None
            if path:
                self.env.note_dependency(path)

    def _twin(self, name: str, obj: Any, package: str) -> list[nodes.Node]:
        twin = package + "." + name.split(".", 1)[1]
        twin_module = package + "." + name.split(".")[1]
        try:
            importlib.import_module(twin_module)
        except ModuleNotFoundError:
            return []  # that implementation does not cover this chapter (yet)
        except Exception as error:
            logger.warning(
                "mpbadnet: importing %s failed: %r",
                twin_module,
                error,
                location=self.get_location(),
                type="mpbadnet",
            )
            return []
        try:
            modname, qualname, twin_obj = resolve(twin)
        except Unresolved:
            logger.warning(
                "mpbadnet: Implemented by names %s, but %s has no twin %s",
                name,
                package,
                twin,
                location=self.get_location(),
                type="mpbadnet",
                subtype="implemented_by",
            )
            return []
        if twin_obj is obj:
            note = nodes.inline("", f" ({package}: the same object)", classes=["mpbadnet-reexport"])
            return [note]
        link = _api_link(self.env, twin, shown=package)
        return [
            nodes.Text(" ("),
            link,
            *_source_link(self.env, *_source_of(modname, qualname, twin_obj)),
            nodes.Text(")"),
        ]


class SingleImplementationRole(ImplementedByRole):
    """``{spec-impl-one}`fast.x.y```: one link, used when the spec names both twins itself."""

    with_twins: ClassVar[bool] = False


def on_missing_reference(
    app: Sphinx, env: BuildEnvironment, node: addnodes.pending_xref, contnode: nodes.Element
) -> None:
    if node.get("mpbadnet_implemented_by"):
        logger.warning(
            "mpbadnet: Implemented by names %s, which has no entry in the API reference",
            node["reftarget"],
            location=node,
            type="mpbadnet",
            subtype="implemented_by",
        )


def record_implementations(app: Sphinx, doctree: nodes.document) -> None:
    """Record, per spec document, under which section each ``Implemented by`` name is listed."""
    env = app.env
    docname = current_docname(env)
    if not _is_spec_document(app, docname):
        return
    listed: list[tuple[str, str, int]] = []
    for reference in doctree.findall(addnodes.pending_xref):
        if not reference.get("mpbadnet_implemented_by"):
            continue
        section = reference.parent
        while section is not None and not isinstance(section, nodes.section):
            section = section.parent
        ids = section["ids"] if section is not None else []
        label = next((identifier for identifier in ids if identifier.startswith("sec-")), "")
        listed.append((reference["reftarget"], label, reference.line or 0))
    uses: dict[str, list[tuple[str, str, int]]] = getattr(env, ENV_LISTED, {})
    setattr(env, ENV_LISTED, uses)
    uses[docname] = listed


def check_implementation_sections(app: Sphinx, env: BuildEnvironment) -> None:
    """Report a name never listed under the section its docstring anchor names."""
    sections: dict[str, set[str]] = {}
    first_place: dict[str, tuple[str, int]] = {}
    for docname, listed in sorted(getattr(env, ENV_LISTED, {}).items()):
        for name, label, line in listed:
            sections.setdefault(name, set()).add(label)
            first_place.setdefault(name, (docname, line))
    for name, labels in sorted(sections.items()):
        try:
            obj = resolve(name)[2]
        except Unresolved:
            continue
        anchor = ANCHOR.match((inspect.getdoc(obj) or "").split("\n", 1)[0])
        if anchor is None:
            continue
        own = spec_label(anchor["number"])
        if any(label == own or label.startswith(own + "-") for label in labels):
            continue
        message = "mpbadnet: %s is listed under %s, never under %s, the section its docstring opens with"
        arguments = (name, ", ".join(sorted(labels)), own)
        if app.config.mpbadnet_strict_backlinks:
            logger.warning(
                message, *arguments, location=first_place[name], type="mpbadnet", subtype="backlink"
            )
        else:
            logger.info(message, *arguments, location=first_place[name])


# -- code -> spec -----------------------------------------------------------------------------


def link_docstring_anchor(
    app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """Turn the leading ``§5.1 Multiplication`` of a docstring into a reference to ``sec-5-1``."""
    if not lines:
        return
    match = ANCHOR.match(lines[0])
    if match is None:
        return
    raw_title = match["title"]
    title = raw_title.strip()
    number = match["number"]
    label = spec_label(number)
    shown = f"§{number} {title}".replace("\\", "\\\\").replace("`", "\\`").replace("<", "\\<")
    rest = raw_title[len(raw_title.rstrip()) :] + lines[0][match.end() :]
    lines[0] = f":ref:`{shown} <{label}>`{rest}"
    env = app.env
    uses: dict[str, list[tuple[str, str, str, str, str]]] = getattr(env, ENV_ANCHORS, {})
    setattr(env, ENV_ANCHORS, uses)
    uses.setdefault(current_docname(env), []).append((label, number, title, name, _docstring_location(obj)))


def _docstring_location(obj: Any) -> str:
    """``path:line`` of the definition of ``obj`` (empty when Python cannot tell)."""
    try:
        path = inspect.getsourcefile(obj)
        line = inspect.getsourcelines(obj)[1]
    except (OSError, TypeError):
        return ""
    return f"{path}:{line}" if path else ""


def escape_absolute_values(lines: list[str]) -> None:
    """Read ``|x|`` in docstring prose as an absolute value, not a substitution reference.

    The docstrings are written to be read as plain text beside the spec, where ``|x|`` is
    the absolute value. Literal blocks, directives and inline literals are left alone.
    """
    block_indent: int | None = None
    for index, line in enumerate(lines):
        indent = len(line) - len(line.lstrip())
        if block_indent is not None:
            if not line.strip() or indent > block_indent:
                continue
            block_indent = None
        if line.rstrip().endswith("::"):
            block_indent = indent
        if "|" not in line:
            continue
        parts = INLINE_CODE.split(line)
        for part_index in range(0, len(parts), 2):  # even indices are outside inline code
            parts[part_index] = BARS.sub(r"\\|\g<inner>\\|", parts[part_index])
        lines[index] = "".join(parts)


def process_docstring(app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    if what == "data" and lines and inspect.getdoc(type(obj)) == inspect.cleandoc("\n".join(lines)):
        lines.clear()  # a constant without documentation shows its type's docstring: drop it
        return
    escape_absolute_values(lines)
    link_docstring_anchor(app, what, name, obj, options, lines)


def purge_recorded(app: Sphinx, env: BuildEnvironment, docname: str) -> None:
    for attribute in (ENV_ANCHORS, ENV_LISTED):
        getattr(env, attribute, {}).pop(docname, None)


def merge_recorded(app: Sphinx, env: BuildEnvironment, docnames: set[str], other: BuildEnvironment) -> None:
    for attribute in (ENV_ANCHORS, ENV_LISTED):
        recorded: dict[str, list[Any]] = getattr(env, attribute, {})
        setattr(env, attribute, recorded)
        for docname, found in getattr(other, attribute, {}).items():
            if docname in docnames:
                recorded[docname] = found


def check_anchor_titles(app: Sphinx, env: BuildEnvironment) -> None:
    """Each docstring anchor ``§N T`` must match the spec heading ``N T`` of target ``sec-N``."""
    domains = getattr(env, "domains", None)
    standard = getattr(domains, "standard_domain", None) or env.get_domain("std")
    labels: dict[str, tuple[str, str, str]] = standard.labels  # type: ignore[attr-defined]
    for docname, found in sorted(getattr(env, ENV_ANCHORS, {}).items()):
        for label, number, title, objname, where in found:
            if label not in labels:
                continue  # the :ref: itself reports the undefined label
            heading = labels[label][2]
            spec = ANCHOR.match("§" + heading)
            if spec is None or (spec["number"], spec["title"].strip()) != (number, title):
                logger.warning(
                    "mpbadnet: the docstring of %s opens with '§%s %s' but target %s is the heading '%s'",
                    objname,
                    number,
                    title,
                    label,
                    heading,
                    location=where or docname,
                    type="mpbadnet",
                    subtype="anchor",
                )


def keep_public_methods(app: Sphinx, what: str, name: str, obj: Any, skip: bool, options: Any) -> bool | None:
    """Show the public methods and properties of refimpl and fast classes even without docstring.

    ``RunResult.rounds`` or ``PartyContext.ring`` are part of the interface both
    implementations share, docstring or not.
    """
    if not skip or what not in {"class", "exception"} or name.startswith("_"):
        return None
    target = obj.fget if isinstance(obj, property) else obj
    if not inspect.isfunction(target):
        return None
    module = str(getattr(target, "__module__", "") or "")
    owner = target.__qualname__.rsplit(".", 1)[0]
    if (
        module.split(".")[0] in app.config.mpbadnet_implementations
        and "." not in owner
        and owner != "<locals>"
    ):
        return False
    return None


# -- re-exports -------------------------------------------------------------------------------


def _defining_module(name: str, obj: Any, modname: str, reference: str) -> str | None:
    """Where a re-exported ``obj`` is defined, or ``None`` if ``modname`` defines it itself."""
    defining = getattr(obj, "__module__", None)
    if (inspect.isclass(obj) or inspect.isroutine(obj)) and isinstance(defining, str):
        return None if defining == modname else defining
    candidates = [
        module.__name__
        for module_name, module in sorted(sys.modules.items())
        if (module_name == reference or module_name.startswith(reference + "."))
        and module_name != modname
        and getattr(module, name, None) is obj
    ]
    assignment = re.compile(rf"^{re.escape(name)}\s*(?::[^=]*)?=", re.MULTILINE)
    for candidate in candidates:
        try:
            if assignment.search(inspect.getsource(sys.modules[candidate])):
                return candidate
        except (OSError, TypeError):
            continue
    return candidates[0] if candidates else None


class ReexportsDirective(SphinxDirective):
    """``{reexports} fast.ring``: the members of a module that are another package's objects."""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        modname = self.arguments[0]
        reference = self.config.mpbadnet_implementations[0]
        module = importlib.import_module(modname)
        exported = getattr(module, "__all__", None)
        names = (
            list(exported)
            if exported is not None
            else [name for name in dir(module) if not name.startswith("_")]
        )
        counterpart = reference + "." + modname.split(".", 1)[1]
        grouped: dict[str, list[str]] = {}
        for name in names:
            defining = _defining_module(name, getattr(module, name), modname, reference)
            if defining is None or not defining.startswith(reference + "."):
                continue
            if exported is None and defining != counterpart:
                continue  # without __all__, only the counterpart module's objects count as re-exports
            grouped.setdefault(defining, []).append(name)
        if not grouped:
            return []
        introduction = nodes.paragraph()
        introduction += nodes.literal(modname, modname)
        introduction += nodes.Text(
            f" also exports these objects of {reference}: the very same objects, re-exported."
        )
        listing = nodes.bullet_list()
        for defining, members in sorted(grouped.items()):
            paragraph = nodes.paragraph()
            paragraph += nodes.Text("From ")
            module_link = addnodes.pending_xref(
                "",
                refdomain="py",
                reftype="mod",
                reftarget=defining,
                refexplicit=False,
                refdoc=self.env.docname,
            )
            module_link += nodes.literal(defining, defining, classes=["xref", "py", "py-mod"])
            paragraph += module_link
            paragraph += nodes.Text(": ")
            for index, member in enumerate(members):
                if index:
                    paragraph += nodes.Text(", ")
                link = addnodes.pending_xref(
                    "",
                    refdomain="py",
                    reftype="obj",
                    reftarget=f"{defining}.{member}",
                    refexplicit=True,
                    refdoc=self.env.docname,
                )
                link += nodes.literal(member, member, classes=["xref", "py", "py-obj"])
                paragraph += link
            paragraph += nodes.Text(".")
            listing += nodes.list_item("", paragraph)
        section = nodes.container(classes=["mpbadnet-reexports"])
        section += nodes.rubric("", f"Shared with {reference}")
        section += introduction
        section += listing
        return [section]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("mpbadnet_spec_source", "../spec", "env", types=[str])
    app.add_config_value("mpbadnet_spec_target", "_generated/spec", "env", types=[str])
    app.add_config_value("mpbadnet_implementations", ["refimpl", "fast"], "env", types=[list])
    app.add_config_value("mpbadnet_strict_backlinks", False, "env", types=[bool])
    app.connect("config-inited", mirror_spec)
    app.connect("source-read", on_source_read)
    app.add_role("spec-impl", ImplementedByRole())
    app.add_role("spec-impl-one", SingleImplementationRole())
    app.connect("missing-reference", on_missing_reference)
    app.connect("doctree-read", record_implementations)
    app.connect("env-check-consistency", check_implementation_sections)
    app.connect("autodoc-process-docstring", process_docstring, priority=600)
    app.connect("env-purge-doc", purge_recorded)
    app.connect("env-merge-info", merge_recorded)
    app.connect("env-check-consistency", check_anchor_titles)
    app.connect("autodoc-skip-member", keep_public_methods)
    app.add_directive("reexports", ReexportsDirective)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
