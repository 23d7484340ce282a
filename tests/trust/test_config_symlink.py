"""A config.toml that is a symlink (dotfiles: stow, chezmoi, home-manager) is still the index set.

Scenario (QA 2026-12-05): the user keeps config.toml in a dotfiles repository and links it into
the config directory. The running daemon watched only the config directory, so an edit of the
linked file (removing the public index) was never applied: the daemon kept asking the removed
index, `status` said nothing, until it happened to restart. And `satchel index pin` (every
`satchel index ...` edit) replaced the link by a file of its own, so the dotfiles copy and the
file in use parted silently. Now the linked file's directory is watched too, edits through the
link are applied live, and Satchel's own edits write the linked file, keeping the link.
"""

from __future__ import annotations

from pathlib import Path

from tests.trust.laptop import Laptop


def _link_into_dotfiles(laptop: Laptop) -> Path:
    """Move config.toml into ``<root>/dotfiles/satchel.toml`` and link it back, as a dotfiles
    tool does; the linked file's path."""
    dotfiles = laptop.root / "dotfiles"
    dotfiles.mkdir()
    linked = dotfiles / "satchel.toml"
    linked.write_text(laptop.config.read_text())
    laptop.config.unlink()
    laptop.config.symlink_to(linked)
    return linked


def test_edits_of_a_linked_config_apply_live_and_index_edits_keep_the_link(
    laptop: Laptop,
) -> None:
    shell = laptop.shell()
    laptop.ok("index", "list", env=shell)  # the first start adopts: private, then public
    laptop.stop()
    linked = _link_into_dotfiles(laptop)
    public = f"127-0-0-1-{laptop.public.port}"
    assert public in [i["name"] for i in laptop.listing(env=shell)["indexes"]]

    good = linked.read_text()
    linked.write_text(good + "[settings\n")  # each edit must be seen: a broken one is reported
    laptop.wait_status("invalid TOML", env=shell)
    private_only = good[: good.index("[[index]]", good.index("[[index]]") + 1)]
    linked.write_text(private_only)
    laptop.wait_status("invalid TOML", env=shell, gone=True)
    assert [i["name"] for i in laptop.listing(env=shell)["indexes"]] == [laptop.private_name()]

    laptop.ok("index", "pin", "internal-tool", laptop.private_name(), env=shell)
    assert laptop.config.is_symlink()
    assert "[pins]" in linked.read_text()
    assert laptop.resolved("internal-tool", env=shell) == "1.0.0"


def test_a_dangling_link_keeps_the_last_good_index_set_and_is_an_error_at_restart(
    laptop: Laptop,
) -> None:
    """The linked file goes away (a dotfiles checkout of another branch, a moved repository):
    the link dangles. The running daemon used to read that as an empty config.toml, a decision
    for no index at all, in silence; now it keeps the last good configuration and says why, and
    a daemon started on the dangling link has no index set and says so, as for a broken file."""
    shell = laptop.shell()
    laptop.ok("index", "list", env=shell)
    linked = _link_into_dotfiles(laptop)
    dotfiles = linked.parent
    laptop.wait_status("config error:  none", env=shell)
    linked.rename(dotfiles / "moved.toml")

    laptop.wait_status("does not exist", env=shell)
    assert laptop.resolved("internal-tool", env=shell) == "1.0.0"  # the last good index set
    laptop.stop()
    result = laptop.satchel("resolve", "internal-tool", env=shell)
    assert result.returncode != 0, result.stdout
    assert str(linked) in result.stderr and "does not fall back" in result.stderr


def test_a_link_loop_is_a_config_error_not_a_crash(laptop: Laptop) -> None:
    """config.toml links to itself (a dotfiles tool's mistake: ``ln -s config.toml``). A daemon
    started on it crashed (its log: ``RuntimeError: Symlink loop``; the client: "satcheld
    closed the connection before answering"); now it runs with no index set and says why, as
    for any file it cannot read, and the same daemon uses the file once the link is fixed."""
    shell = laptop.shell()
    laptop.ok("index", "list", env=shell)  # the first start adopts: private, then public
    good = laptop.config.read_text()
    laptop.stop()
    laptop.config.unlink()
    laptop.config.symlink_to(laptop.config.name)

    result = laptop.satchel("resolve", "internal-tool", env=shell)
    assert result.returncode != 0, result.stdout
    assert str(laptop.config) in result.stderr, result.stderr
    assert "symbolic links" in result.stderr and "does not fall back" in result.stderr
    laptop.wait_status("symbolic links", env=shell)

    laptop.config.unlink()
    laptop.config.write_text(good)
    laptop.wait_status("symbolic links", env=shell, gone=True)
    assert laptop.resolved("internal-tool", env=shell) == "1.0.0"


def test_a_linked_config_whose_directory_comes_back_is_taken_again(laptop: Laptop) -> None:
    """The dotfiles directory the link points into goes away whole (moved, a checkout being
    re-cloned) and comes back with the file: the running daemon, which said the link
    dangles, takes the file again. (Before: its watch stayed on the directory that was gone,
    so the error stood until the daemon restarted.)"""
    shell = laptop.shell()
    laptop.ok("index", "list", env=shell)
    good = laptop.config.read_text()
    linked = _link_into_dotfiles(laptop)
    dotfiles = linked.parent
    laptop.wait_status("config error:  none", env=shell)
    dotfiles.rename(laptop.root / "dotfiles-away")
    laptop.wait_status("does not exist", env=shell)

    dotfiles.mkdir()
    linked.write_text(good)
    laptop.wait_status("does not exist", env=shell, gone=True)
    assert laptop.resolved("internal-tool", env=shell) == "1.0.0"
