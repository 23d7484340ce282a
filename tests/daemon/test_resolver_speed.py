"""The resolver's shortcuts keep its answers: marker memo by object, preference picked early.

`_Provider.marker_holds` memoises by the requirement object (kept in the entry, so a reused id
can never answer for another requirement), and `narrow_requirement_selection` returns only the
identifier `get_preference` ranks first, so resolvelib skips its own ``min`` over preferences.
"""

from __future__ import annotations

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from resolvelib.structs import RequirementInformation

from satchel.daemon.resolver.candidates import MetadataCache
from satchel.daemon.resolver.provider import Candidate as _Candidate
from satchel.daemon.resolver.provider import Provider as _Provider
from satchel.daemon.resolver.provider import Req as _Req
from satchel.daemon.resolver.scope import ScopedPages
from satchel.daemon.resolver.target import synthetic_target
from satchel.daemon.storage.model import FileEntry, ProjectPage

LINUX = synthetic_target("3.11.4", ["manylinux_2_28_x86_64"])
WINDOWS = synthetic_target("3.11.4", ["win_amd64"])


class _NoSource:
    def pages(self, project: str) -> ScopedPages:
        raise AssertionError("not needed")

    def core_metadata(self, page: ProjectPage, file: FileEntry) -> bytes:
        raise AssertionError("not needed")


def _provider(cache: MetadataCache, target: object = LINUX) -> _Provider:
    return _Provider(
        target,  # type: ignore[arg-type]
        _NoSource(),
        cache,
        constraints={},
        installed={},
        prefer_installed=True,
        allow_sdists=True,
        prereleases=False,
        hashes=None,
    )


def test_marker_results_are_per_target() -> None:
    cache = MetadataCache()
    req = Requirement('pywin32; sys_platform == "win32"')
    assert _provider(cache, WINDOWS).marker_holds(req, "") is True
    assert _provider(cache, LINUX).marker_holds(req, "") is False
    assert _provider(cache, WINDOWS).marker_holds(req, "") is True


def test_a_memo_entry_of_another_object_at_the_same_id_is_not_trusted() -> None:
    cache = MetadataCache()
    provider = _provider(cache)
    old = Requirement('colorama; sys_platform == "win32"')
    new = Requirement('uvloop; sys_platform == "linux"')
    # As if `old` had been freed and `new` allocated at its address.
    cache.markers[(provider.target_key, id(new), "")] = (old, False)

    assert provider.marker_holds(new, "") is True
    assert cache.markers[(provider.target_key, id(new), "")] == (new, True)


def _info(
    name: str, spec: str, parent: _Candidate | None
) -> RequirementInformation[_Req, _Candidate]:
    return RequirementInformation(_Req(name, frozenset(), SpecifierSet(spec), name + spec), parent)


def test_narrowing_returns_the_one_identifier_preference_ranks_first() -> None:
    provider = _provider(MetadataCache())
    parent = _Candidate("root-dep", Version("1.0"))
    information = {
        "zeta": [_info("zeta", "==1.0", parent)],  # exact: first
        "alpha": [_info("alpha", ">=1", None)],  # direct
        "beta": [_info("beta", ">=1", parent)],
    }

    def narrowed(names: list[str]) -> list[str]:
        infos = {k: iter(v) for k, v in information.items()}
        return list(provider.narrow_requirement_selection(names, {}, {}, infos, []))

    def preferred(names: list[str]) -> str:
        return min(
            names,
            key=lambda n: provider.get_preference(n, {}, {}, {n: iter(information[n])}, []),
        )

    for names in (["alpha", "beta", "zeta"], ["alpha", "beta"], ["beta"]):
        assert narrowed(names) == [preferred(names)]
    assert narrowed(["alpha", "beta", "zeta"]) == ["zeta"]
    assert narrowed(["beta", "alpha"]) == ["alpha"]
