"""A small German archive for the server tests: metadata, folders and a hostile seed."""

from __future__ import annotations

from pathlib import Path

from conftest import GERMAN_ARTICLES, FakeEmbedder

from indexer import Indexer

SCRIPT = "<script>alert('x')</script>"

ARCHIVE = {
    "nordkorea.txt": (
        "---\ntitle: Putin reist nach Nordkorea\ndate: 2024-06-18\nsource: Tagesschau\n"
        "agency: dpa\nurl: https://example.org/nordkorea\n---\n" + GERMAN_ARTICLES["nordkorea.txt"]
    ),
    "Wetter/hitze.md": (
        "---\ndate: 2023-07-01\nsource: Wetterdienst Süd\n---\n" + GERMAN_ARTICLES["wetter.md"]
    ),
    "Sport/fussball.txt": (
        "---\ndate: 2022-05-02\nsource: Sportschau\n---\n" + GERMAN_ARTICLES["fussball.txt"]
    ),
    "Sport/boxen.txt": (
        "---\ntitle: Boxen in Köln\ndate: 2024-01-10\nsource: Sportschau\n---\n"
        "Der Boxkampf in Köln endet nach zwölf Runden mit einem knappen Punktsieg.\n\n"
        "Die Zuschauer in der Halle jubeln über den Sieg des Lokalmatadors.\n"
    ),
    "Sport/kopie.txt": (  # an agency text printed twice: one hit that names the copy
        "---\ntitle: Knapper Punktsieg\ndate: 2024-01-11\nsource: Kölner Blatt\n---\n"
        "Der Boxkampf in Köln endet nach zwölf Runden mit einem knappen Punktsieg.\n"
    ),
    "sicherheit.md": (
        f"---\ntitle: Angriff {SCRIPT} im Netz\nsource: Netz{SCRIPT}\n"
        "url: javascript:alert(1)\n---\n"
        f"Unbekannte versuchten, {SCRIPT} in Webseiten einzuschleusen; die Sicherheitslücke "
        "ist geschlossen.\n"
    ),
}


def write_archive(folder: Path, files: dict[str, str] = ARCHIVE) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder


def build_archive(tmp_path: Path) -> tuple[Path, Path]:
    """(seeds folder, index folder) of ARCHIVE built with the fake embedder."""
    seeds = write_archive(tmp_path / "seeds")
    index = tmp_path / "index"
    Indexer(seeds, index, model=FakeEmbedder()).update()
    return seeds, index
