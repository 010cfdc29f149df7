"""Typo robustness: mistyped copies of the bench questions, and what they cost.

1. **Generator** (:func:`typo_question`, deterministic): for every set under the bench
   root with a ``queries.jsonl``, each question gets 1 or 2 typing errors (even odds)
   in its rarest content words (rarity = passages of the set's corpus containing the
   folded word; words the corpus lacks count as the most common, since mistyping them
   changes nothing a keyword search could find). Content words: not a stopword, no
   digit, at least 4 folded letters, not inside double quotes. Two errors go into the
   two rarest words (both into the one word if it is the only content word and has 9+
   letters). Error types: a QWERTZ neighbour key instead of a letter, two adjacent
   letters swapped, a letter dropped, a letter doubled, a neighbour key of the
   previous letter inserted, and ä/ö/ü/ß written ae/oe/ue/ss (chosen with probability
   1/2 when the word has one). The first letter is never changed (an ä/ö/ü written
   ae/oe/ue keeps the folded first letter). Seeded per (seed, set, question id), so a
   question's typos do not depend on the others. Copies go to
   ``benchmarks/.cache/typos/<set>/queries.jsonl`` (with ``changes.jsonl``: what changed).
2. **Quality**: one temporary index per set (``search.evaluate.IndexedBenchmark``),
   clean vs typo'd MRR@10 for seedsearch hybrid / bm25 / vector and for the bm25s peer
   (Snowball German, as in benchmarks/quality.py) in the same run. ``--tolerance``:
   ``off`` (typo tolerance off), ``on`` (the engine's own typo tolerance, its
   default), ``rewrite`` and ``confident`` (a
   simulation: the question rewritten with all / only the confident ``search.typos``
   corrections before it is sent to the current engine). Also: how often
   ``search.typos`` recovers the original word, how often clean questions would be
   touched, and GermanQuAD questions that already hold real typos.
3. **Lookup cost** of ``search.typos`` at 1x / 10x / 100x vocabulary size (gnad-test
   words; larger vocabularies synthesised, see :func:`synthetic_vocabulary`).

Writes benchmarks/results/typos.md.

    .venv/bin/python benchmarks/typos.py [--bench-root DIR] [--sets xquad-de,germanquad]
        [--tolerance off,on,rewrite,confident] [--penalties 0.5,0.9] [--sizes 1,10,100]
        [--compare] [--skip-quality] [--skip-lookup] [--seed 17] [--out FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from indexer.analysis import STOPWORDS, analyze, fold  # noqa: E402
from search.typos import quoted_spans, surface_words  # noqa: E402

CACHE = ROOT / "benchmarks" / ".cache" / "typos"
MODES = ("hybrid", "bm25", "vector")
#: ``edit_prior`` values compared for the correction accuracy (1.0: document frequency
#: alone; 0.001: fewer edits first, df only between equal edits).
PRIOR_SWEEP = (0.001, 0.01, 0.02, 0.05, 0.1, 0.3, 1.0)
#: off: typo tolerance off; on: the engine's own typo tolerance (the default); rewrite /
#: confident: a simulation, the question rewritten with all / confident corrections.
TOLERANCES = ("off", "on", "rewrite", "confident")

# ------------------------------------------------------------------ generator

_ROWS = ("qwertzuiopü", "asdfghjklöä", "yxcvbnm")
_OFFSETS = (0.0, 0.25, 0.75)  # horizontal stagger of the rows on a German keyboard


def _neighbour_table() -> dict[str, str]:
    pos = {ch: (c + _OFFSETS[r], r) for r, row in enumerate(_ROWS) for c, ch in enumerate(row)}
    return {
        a: "".join(
            b
            for b, (xb, yb) in pos.items()
            if b != a and abs(yb - ya) <= 1 and abs(xb - xa) <= (1.0 if yb == ya else 0.8)
        )
        for a, (xa, ya) in pos.items()
    }


#: Keys next to each key on a German (QWERTZ) keyboard.
NEIGHBOURS = _neighbour_table()
_UMLAUT_SPELLINGS = {"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue"}
ERROR_KINDS = ("neighbour", "swap", "drop", "double", "insert", "umlaut")
MIN_CONTENT_LETTERS = 4


def _same_case(ch: str, like: str) -> str:
    return ch.upper() if like.isupper() else ch


def apply_error(word: str, kind: str, rng: random.Random) -> str | None:
    """``word`` with one error of ``kind``, or None if it does not apply.

    Position 0 is never touched, except by ``umlaut`` (``Ä`` -> ``Ae`` keeps the
    folded first letter ``a``).
    """
    n = len(word)
    if kind == "umlaut":
        spots = [i for i, ch in enumerate(word) if ch in _UMLAUT_SPELLINGS]
        if not spots:
            return None
        i = rng.choice(spots)
        return word[:i] + _UMLAUT_SPELLINGS[word[i]] + word[i + 1 :]
    if kind == "neighbour":
        spots = [i for i in range(1, n) if word[i].lower() in NEIGHBOURS]
        if not spots:
            return None
        i = rng.choice(spots)
        return (
            word[:i] + _same_case(rng.choice(NEIGHBOURS[word[i].lower()]), word[i]) + word[i + 1 :]
        )
    if kind == "swap":
        spots = [i for i in range(1, n - 1) if word[i].lower() != word[i + 1].lower()]
        if not spots:
            return None
        i = rng.choice(spots)
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == "drop":
        if n < 4:
            return None
        i = rng.randrange(1, n)
        return word[:i] + word[i + 1 :]
    if kind == "double":
        if n < 2:
            return None
        i = rng.randrange(1, n)
        return word[: i + 1] + word[i] + word[i + 1 :]
    if kind == "insert":
        spots = [i for i in range(1, n + 1) if word[i - 1].lower() in NEIGHBOURS]
        if not spots:
            return None
        i = rng.choice(spots)
        extra = rng.choice(NEIGHBOURS[word[i - 1].lower()])
        return word[:i] + extra + word[i:]
    raise ValueError(f"unknown error kind {kind!r}: use one of {', '.join(ERROR_KINDS)}")


def mistype(word: str, rng: random.Random) -> tuple[str, str]:
    """(mistyped word, error kind): the umlaut spelling with probability 1/2 when the
    word has ä/ö/ü/ß, else one of the other kinds (an inapplicable one is redrawn)."""
    if any(ch in _UMLAUT_SPELLINGS for ch in word) and rng.random() < 0.5:
        out = apply_error(word, "umlaut", rng)
        if out is not None:
            return out, "umlaut"
    kinds = list(ERROR_KINDS[:-1])
    rng.shuffle(kinds)
    for kind in kinds:
        out = apply_error(word, kind, rng)
        if out is not None and out != word:
            return out, kind
    return word, "none"


@dataclass(frozen=True)
class Change:
    """One mistyped word of a question: as written, as mistyped, the error kinds."""

    original: str
    typo: str
    kinds: tuple[str, ...]


@dataclass(frozen=True)
class TypoQuestion:
    text: str
    changes: tuple[Change, ...]


def content_words(question: str, df: Mapping[str, int]) -> list[tuple[int, int, str]]:
    """(start, end, word as typed) of the content words, rarest first (ties: in
    question order); words the corpus lacks come last."""
    phrases = quoted_spans(question)
    found = []
    for start, end, text, word in surface_words(question):
        if word is None or word in STOPWORDS or not word.isalpha():
            continue
        if len(word) < MIN_CONTENT_LETTERS or any(a <= start and end <= b for a, b in phrases):
            continue
        n = df.get(word, 0)
        found.append(((n if n > 0 else float("inf"), start), (start, end, text)))
    return [item for _, item in sorted(found)]


def typo_question(question: str, df: Mapping[str, int], rng: random.Random) -> TypoQuestion:
    """``question`` with 1-2 typing errors in its rarest content words (see the module
    docstring); unchanged if it has no content word."""
    words = content_words(question, df)
    if not words:
        return TypoQuestion(question, ())
    errors = 1 if rng.random() < 0.5 else 2
    if errors == 2 and len(words) == 1:
        targets = [(words[0], 2 if len(fold(words[0][2])) >= 9 else 1)]
    else:
        targets = [(w, 1) for w in words[:errors]]
    changes: list[tuple[int, int, Change]] = []
    for (start, end, text), count in targets:
        typo, kinds = text, []
        for _ in range(count):
            typo, kind = mistype(typo, rng)
            kinds.append(kind)
        changes.append((start, end, Change(text, typo, tuple(kinds))))
    out, pos = [], 0
    for start, end, change in sorted(changes, key=lambda c: c[0]):
        out += [question[pos:start], change.typo]
        pos = end
    out.append(question[pos:])
    return TypoQuestion("".join(out), tuple(c for _, _, c in sorted(changes, key=lambda c: c[0])))


def question_rng(seed: int, set_name: str, qid: str) -> random.Random:
    """The generator for one question: independent of the other questions."""
    return random.Random(f"{seed}:{set_name}:{qid}")


# ---------------------------------------------------------------- bench sets


def find_query_sets(root: Path, names: Sequence[str] | None = None) -> list[Path]:
    """Folders under ``root`` with corpus.jsonl, queries.jsonl and qrels.tsv."""
    files = ("corpus.jsonl", "queries.jsonl", "qrels.tsv")
    sets = sorted(
        d
        for d in root.iterdir()
        if d.is_dir() and not d.name.startswith(".") and all((d / f).is_file() for f in files)
    )
    if names:
        sets = [d for d in sets if d.name in names]
    return sets


def passage_texts(bench, tmp: Path) -> list[str]:
    """Each passage as the index sees it (the product's passage split), title first."""
    from benchmarks.quality import passages_of

    titles = {d.id: d.title or d.id for d in bench.corpus}
    ids, texts = passages_of(bench, tmp)
    return [f"{titles[i]}\n{t}" for i, t in zip(ids, texts, strict=True)]


def write_typo_set(bench, stats, seed: int) -> tuple[list, list[TypoQuestion]]:
    """Typo'd queries of a set, written to the cache; returns (queries, typo questions)."""
    from search.evaluate import Query

    folder = CACHE / bench.name
    folder.mkdir(parents=True, exist_ok=True)
    typo_queries, typos = [], []
    with (
        open(folder / "queries.jsonl", "w", encoding="utf-8") as fq,
        open(folder / "changes.jsonl", "w", encoding="utf-8") as fc,
    ):
        for q in bench.queries:
            t = typo_question(q.text, stats.df, question_rng(seed, bench.name, q.id))
            typos.append(t)
            typo_queries.append(Query(q.id, t.text))
            fq.write(json.dumps({"id": q.id, "text": t.text}, ensure_ascii=False) + "\n")
            rec = {"id": q.id, "clean": q.text, "typo": t.text}
            rec["changes"] = [dataclasses.asdict(c) for c in t.changes]
            fc.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return typo_queries, typos


# ----------------------------------------------------------------- analysis


def correction_accuracy(typos: Sequence[TypoQuestion], vocab, settings, terms) -> dict[str, float]:
    """How ``search.typos`` does on the generated errors (folded words compared)."""
    from search.typos import Skip, check_word

    words = changed = unknown = top = conf = conf_ok = wrong_known = stem = 0
    for t in typos:
        for c in t.changes:
            words += 1
            orig, typo = fold(c.original), fold(c.typo)
            if orig == typo:
                continue
            changed += 1
            check = check_word(typo, vocab, settings, terms)
            if check.known:
                wrong_known += 1
                continue
            if check.skip is Skip.STEM:
                stem += 1
                continue
            unknown += 1
            best = check.correction
            top += best is not None and best.to_word == orig
            if best is not None and check.confident:
                conf += 1
                conf_ok += best.to_word == orig
    return {
        "words": words,
        "changed": changed,
        "unknown": unknown,
        "known": wrong_known,
        "stem": stem,
        "top1": top / max(unknown, 1),
        "confident": conf / max(unknown, 1),
        "confident_precision": conf_ok / max(conf, 1),
    }


def clean_touch(queries, vocab, settings, terms) -> dict[str, float]:
    """Share of clean questions with a corrected (unknown) word, and with a known
    word that gets candidates because a one-edit neighbour is far more frequent."""
    from search.typos import check_question

    corrected = rare = 0
    for q in queries:
        check = check_question(q.text, vocab, settings, terms)
        corrected += bool(check.corrections)
        rare += any(w.known and w.candidates for w in check.words)
    n = max(len(queries), 1)
    return {"corrected": corrected / n, "known_rare": rare / n}


def real_typos(queries, vocab, settings, terms) -> list[tuple[str, str, str, int, bool]]:
    """(query id, word as typed, best candidate, edits, confident) for clean questions
    with a word the corpus lacks that is within the allowed edits of a corpus word."""
    from search.typos import check_question

    out = []
    for q in queries:
        for w in check_question(q.text, vocab, settings, terms).corrections:
            c = w.correction
            out.append((q.id, w.text, c.display, c.edits, w.confident))
    return out


# ------------------------------------------------------------------ quality


def engine_settings(tolerance: str):
    """SearchSettings for a ``--tolerance``: ``on`` is the engine's default (its own
    typo tolerance); off, rewrite and confident turn it off (rewrite/confident
    rewrite the question before it is sent)."""
    from search.engine import SearchSettings
    from search.typos import TypoSettings

    return SearchSettings(typo_tolerance=TypoSettings(enabled=tolerance == "on"))


def rewritten(queries, vocab, settings, terms, confident_only: bool = False) -> list:
    """The queries with ``search.typos`` corrections applied (all, or confident ones)."""
    from search.evaluate import Query
    from search.typos import check_question

    return [
        Query(q.id, check_question(q.text, vocab, settings, terms).corrected(confident_only))
        for q in queries
    ]


def first_relevant(ranked, judged) -> int | None:
    """1-based rank of the first relevant id within the first 10 (None: not found)."""
    for i, pid in enumerate(ranked[:10], start=1):
        if judged.get(pid, 0) > 0:
            return i
    return None


def rank_changes(bench, runs: Mapping[str, dict], limit: int = 15) -> list:
    """Clean questions whose answer rank (hybrid, top 10) moved most between typo
    tolerance off and on: (query id, question, rank off, rank on), biggest first."""
    if set(runs) != {"off", "on"}:
        return []
    texts = {q.id: q.text for q in bench.queries}
    moved = []
    for qid, judged in bench.qrels.items():
        if qid not in texts:
            continue
        off = first_relevant(runs["off"].get(qid, ()), judged)
        on = first_relevant(runs["on"].get(qid, ()), judged)
        if off != on:
            gain = (1 / on if on else 0) - (1 / off if off else 0)
            moved.append((abs(gain), qid, texts[qid], off, on))
    moved.sort(key=lambda m: (-m[0], m[1]))
    return [m[1:] for m in moved[:limit]] + (
        [("...", f"{len(moved)} in all", None, None)] if len(moved) > limit else []
    )


def index_words_cost(ib, questions) -> dict[str, float]:
    """What the word statistics cost the index of a set (file size, time to count and
    write them) and what planning a question costs the engine (ms, warm)."""
    import tempfile

    from indexer.store import DOCS, generations
    from indexer.store.docstore import DocStore
    from indexer.store.files import disk_size
    from indexer.store.words import WORDS, updated_stats, write_words
    from search.engine import clean_query

    gen = generations.current_generation(ib.index_dir)
    docs = DocStore(gen / DOCS)
    try:
        passages = docs.all_passages()
    finally:
        docs.close()
    t0 = time.perf_counter()
    stats = updated_stats(None, None, (), passages, True)
    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        write_words(Path(tmp) / WORDS, stats)
    t2 = time.perf_counter()
    out = {
        "words_mb": (gen / WORDS).stat().st_size / 1e6,
        "index_mb": disk_size(gen) / 1e6,
        "count_s": t1 - t0,
        "write_s": t2 - t1,
        "build_s": ib.index_seconds,
    }
    texts = [clean_query(q.text) for q in questions]
    for label, tol in (("on", "on"), ("off", "off")):
        engine = ib.engine(engine_settings(tol))
        times = []
        for text in texts:
            t = time.perf_counter()
            engine.typo_plan(text, tol == "on")
            times.append((time.perf_counter() - t) * 1000)
        out[f"plan_{label}_p50"] = _pct(times, 50)
        out[f"plan_{label}_p95"] = _pct(times, 95)
    # the least of 5 runs per question: the lookup's own cost, without the preemption
    # that a shared machine adds to single runs
    engine = ib.engine(engine_settings("on"))
    least = []
    for text in texts:
        runs = []
        for _ in range(5):
            t = time.perf_counter()
            engine.typo_plan(text)
            runs.append((time.perf_counter() - t) * 1000)
        least.append(min(runs))
    out["plan_min5_p50"], out["plan_min5_p95"] = _pct(least, 50), _pct(least, 95)
    out["plan_min5_max"] = max(least, default=0.0)
    return out


@dataclass(frozen=True)
class SetResult:
    name: str
    questions: int
    passages: int
    vocabulary: int
    rows: list[tuple[str, float, float]]  # (retriever, clean MRR@10, typo MRR@10)
    accuracy: dict[str, float]
    sweep: dict[float, dict[str, float]]
    touch: dict[str, float]
    fold_noop: int
    changed_words: int
    kinds: dict[str, int]
    real: list[tuple[str, str, str, int, bool]]
    cost: dict[str, float]
    moved: list[tuple[str, str, int | None, int | None]]
    seconds: float


def measure_set(
    set_dir: Path, tolerances: Sequence[str], seed: int, penalties: Sequence[float] = ()
) -> SetResult:
    import tempfile

    from benchmarks.quality import bm25s_run, passages_of
    from search.evaluate import IndexedBenchmark, load_benchmark
    from search.metrics import evaluate_run
    from search.typos import TypoSettings, Vocabulary, WordStats

    t0 = time.perf_counter()
    files = [set_dir / f for f in ("corpus.jsonl", "queries.jsonl", "qrels.tsv")]
    bench = load_benchmark(*files, name=set_dir.name)
    with tempfile.TemporaryDirectory() as tmp:
        texts = passage_texts(bench, Path(tmp))
    stats = WordStats()
    stats.add_all(texts)
    vocab = Vocabulary.from_stats(stats)
    terms = {t for text in texts for t in analyze(text)}  # the index's term dictionary
    settings = TypoSettings()
    typo_queries, typos = write_typo_set(bench, stats, seed)
    kinds: dict[str, int] = {}
    noop = changed = 0
    for t in typos:
        for c in t.changes:
            changed += 1
            noop += fold(c.original) == fold(c.typo)
            for k in c.kinds:
                kinds[k] = kinds.get(k, 0) + 1

    def mrr(run) -> float:
        return evaluate_run(run, bench.qrels).mrr_at_10

    rows: list[tuple[str, float, float]] = []
    clean_runs: dict[str, dict] = {}
    with IndexedBenchmark(bench) as ib:
        for tol in tolerances:
            s = engine_settings(tol)
            clean_q, typo_q = list(bench.queries), typo_queries
            if tol in ("rewrite", "confident"):
                only = tol == "confident"
                clean_q = rewritten(clean_q, vocab, settings, terms, only)
                typo_q = rewritten(typo_q, vocab, settings, terms, only)
            for mode in MODES:
                clean_run = ib.run(mode, s, queries=clean_q)
                if mode == "hybrid" and tol in ("off", "on"):
                    clean_runs[tol] = clean_run
                clean = mrr(clean_run)
                typo = mrr(ib.run(mode, s, queries=typo_q))
                rows.append((f"seedsearch {mode}, typos {tol}", clean, typo))
                print(f"  {rows[-1][0]}: {clean:.3f} -> {typo:.3f}", file=sys.stderr)
        for p in penalties:  # BM25 with typo tolerance at other per-edit penalties
            from search.engine import SearchSettings
            from search.typos import TypoSettings as TS

            s = SearchSettings(typo_tolerance=TS(score_penalty=p))
            clean = mrr(ib.run("bm25", s))
            typo = mrr(ib.run("bm25", s, queries=typo_queries))
            rows.append((f"seedsearch bm25, typos on, score_penalty {p}", clean, typo))
            print(f"  {rows[-1][0]}: {clean:.3f} -> {typo:.3f}", file=sys.stderr)
        passages = ib.passages
        cost = index_words_cost(ib, typo_queries)
    with tempfile.TemporaryDirectory() as tmp:
        docs, ptexts = passages_of(bench, Path(tmp))
    peer = "bm25s + Snowball de + stopwords"
    clean = mrr(bm25s_run(bench, docs, ptexts))
    typo = mrr(bm25s_run(dataclasses.replace(bench, queries=tuple(typo_queries)), docs, ptexts))
    rows.append((peer, clean, typo))
    print(f"  {peer}: {clean:.3f} -> {typo:.3f}", file=sys.stderr)
    return SetResult(
        bench.name,
        len(bench.queries),
        passages,
        len(vocab),
        rows,
        correction_accuracy(typos, vocab, settings, terms),
        {
            p: correction_accuracy(typos, vocab, dataclasses.replace(settings, edit_prior=p), terms)
            for p in PRIOR_SWEEP
        },
        clean_touch(bench.queries, vocab, settings, terms),
        noop,
        changed,
        kinds,
        real_typos(bench.queries, vocab, settings, terms),
        cost,
        rank_changes(bench, clean_runs),
        time.perf_counter() - t0,
    )


def quality_markdown(results: Sequence[SetResult], seed: int) -> str:
    lines = [
        "## Clean vs typo'd questions\n",
        f"Typo'd copies: seed {seed}, in `benchmarks/.cache/typos/<set>/`. MRR@10 of each "
        "retriever on the clean and on the typo'd questions, same index. `typos off`: "
        "typo tolerance off (`TypoSettings(enabled=False)`); `typos on`: the engine's own "
        "typo tolerance, its default (BM25 adds each corrected word's candidates at "
        "`0.8 ** edits`, the vector side embeds the question with confident corrections). "
        "`typos rewrite` (simulation, not the engine feature): each question is first "
        "rewritten with the best `search.typos` correction "
        "of every unknown word (default `TypoSettings`, the index's terms given, so words "
        "whose stem is an index term stay), then sent to the same engine; "
        "`typos confident`: the same with confident corrections only (what the vector side "
        "would embed). The clean column shows what rewriting costs clean questions.\n",
    ]
    for r in results:
        lines += [
            f"### {r.name}\n",
            f"{r.questions} questions, {r.passages} passages, vocabulary {r.vocabulary:,} "
            f"folded words; {r.changed_words} words mistyped ("
            + ", ".join(f"{k} {v}" for k, v in sorted(r.kinds.items()))
            + f"); {r.fold_noop} of them fold to the original (ß -> ss). "
            f"{r.seconds:.0f} s.\n",
            "| retriever | MRR@10 clean | MRR@10 typo'd | kept |",
            "|---|---|---|---|",
        ]
        for name, clean, typo in r.rows:
            bold = f"**{name}**" if name.startswith("seedsearch") else name
            lines.append(f"| {bold} | {clean:.3f} | {typo:.3f} | {typo / clean:.1%} |")
        a, t = r.accuracy, r.touch
        lines += [
            "",
            f"`search.typos` on the {a['changed']} mistyped words that fold differently: "
            f"{a['known']} are themselves corpus words, {a['stem']} have a stem that is an index "
            f"term (BM25 matches them as typed; left alone); of the {a['unknown']} others, the "
            f"best candidate is the original word for {a['top1']:.1%}, {a['confident']:.1%} are "
            f"confident corrections, {a['confident_precision']:.1%} of which are right. "
            f"Clean questions: {t['corrected']:.1%} have a word it would correct (a word the "
            f"corpus lacks with a close corpus word), {t['known_rare']:.1%} a known word that "
            "gets candidates because a one-edit neighbour is 50x as frequent.\n",
            "Best candidate right / confident / confident right, by `edit_prior` (the factor "
            "per edit on a candidate's document frequency when candidates are ranked):\n",
            "| edit_prior | " + " | ".join(str(p) for p in r.sweep) + " |",
            "|---|" + "---|" * len(r.sweep),
            "| best right | " + " | ".join(f"{a['top1']:.1%}" for a in r.sweep.values()) + " |",
            "| confident | " + " | ".join(f"{a['confident']:.1%}" for a in r.sweep.values()) + " |",
            "| confident right | "
            + " | ".join(f"{a['confident_precision']:.1%}" for a in r.sweep.values())
            + " |\n",
        ]
        c = r.cost
        lines += [
            f"Word statistics in the index: `words.npz` {c['words_mb']:.2f} MB of "
            f"{c['index_mb']:.1f} MB ({c['words_mb'] / c['index_mb']:.1%}); counting the "
            f"words of all {r.passages} passages {c['count_s']:.2f} s and building + writing "
            f"the vocabulary {c['write_s']:.2f} s, of a {c['build_s']:.0f} s index build "
            "(embedding included). Planning a typo'd question in the engine "
            "(`SearchEngine.typo_plan`: analysis, lookups, candidate terms; warm): "
            f"p50 {c['plan_on_p50']:.3f} ms, p95 {c['plan_on_p95']:.3f} ms with typo "
            f"tolerance, {c['plan_off_p50']:.3f} / {c['plan_off_p95']:.3f} ms without; the "
            f"least of 5 runs per question: p50 {c.get('plan_min5_p50', 0):.3f}, p95 "
            f"{c.get('plan_min5_p95', 0):.3f}, max {c.get('plan_min5_max', 0):.3f} ms.\n",
        ]
        if r.moved:
            lines += [
                "Clean questions whose answer rank (hybrid, top 10) changed most with typo "
                "tolerance on (`-`: not in the top 10):\n",
                "| query | question | rank off | rank on |",
                "|---|---|---|---|",
            ]
            lines += [
                f"| {q} | {t.replace('|', '/')} | {off or '-'} | {on or '-'} |"
                for q, t, off, on in r.moved
            ]
            lines.append("")
    return "\n".join(lines) + "\n"


def real_typo_markdown(result: SetResult, limit: int = 60) -> str:
    rows = result.real
    confident = [r for r in rows if r[4]]
    lines = [
        f"## Real typos in {result.name}'s own questions (heuristic)\n",
        f"Clean questions with a word the corpus lacks that is within the allowed edits of a "
        f"corpus word: {len(rows)} words in {len({r[0] for r in rows})} questions, "
        f"{len(confident)} of them confident corrections. Many are real typos, others are "
        "inflections or names the corpus spells differently. Confident ones "
        f"(first {limit}):\n",
        "| query | typed | best candidate | edits |",
        "|---|---|---|---|",
    ]
    lines += [f"| {q} | {w} | {c} | {e} |" for q, w, c, e, _ in confident[:limit]]
    return "\n".join(lines) + "\n"


# -------------------------------------------------------------- lookup cost

_SUFFIXES = ("e", "en", "er", "es", "em", "n", "s", "ern", "ens", "ung", "ungen", "te", "ten")
_LINKS = ("", "s", "en", "n", "e")


def gnad_counts(path: Path) -> dict[str, int]:
    """Folded word -> articles of gnad-test containing it."""
    from benchmarks.speed import load_gnad
    from search.typos import word_document_counts

    return word_document_counts(text for _, text in load_gnad(path))


def synthetic_vocabulary(base: Mapping[str, int], factor: int, seed: int = 17) -> dict[str, int]:
    """``factor`` times as many words as ``base``, with its first-letter and length
    distribution (so every slice a lookup scans grows ``factor`` times).

    The base words keep their counts times ``factor``. New words fill each (first
    letter, length) cell up to ``factor`` times its base count: first inflections
    (a base word + a German suffix), then recombinations (the start of a base word
    with that first letter + the end of another base word, which includes compounds
    of whole words). Their document frequencies are drawn from the base distribution.
    """
    if factor == 1:
        return dict(base)
    rng = random.Random(seed)
    out = {w: n * factor for w, n in base.items()}
    words = sorted(base)
    dfs = [base[w] for w in words]
    room: dict[tuple[str, int], int] = {}
    for w in words:
        room[(w[0], len(w))] = room.get((w[0], len(w)), 0) + factor - 1
    for w in words:
        for s in _SUFFIXES:
            key = (w[0], len(w) + len(s))
            if room.get(key, 0) > 0 and w + s not in out:
                out[w + s] = rng.choice(dfs)
                room[key] -= 1
    by_first: dict[str, list[str]] = {}
    for w in words:
        by_first.setdefault(w[0], []).append(w)
    by_len = sorted(words, key=len)
    lens = [len(w) for w in by_len]
    import bisect

    for (first, length), left in sorted(room.items()):
        starts = by_first[first]
        tries = 0
        while left > 0 and tries < 100 * left + 1000:
            tries += 1
            a = rng.choice(starts)
            i = rng.randint(1, min(len(a), length - 1)) if length > 1 else 1
            m = length - i
            lo = bisect.bisect_left(lens, m + 1)
            if m < 1 or lo >= len(by_len):
                continue
            w = a[:i] + by_len[rng.randrange(lo, len(by_len))][-m:]
            if w not in out:
                out[w] = rng.choice(dfs)
                left -= 1
    return out


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def vocab_bytes(vocab) -> int:
    """Bytes held by the vocabulary's arrays and word blobs."""
    return sum(a.nbytes for a in vocab.to_arrays().values())


def measure_lookup(
    base: Mapping[str, int], factor: int, questions: Sequence[str], words: Sequence[str]
) -> dict[str, float]:
    """Build time, size and lookup latency (per word, per question) at one size."""
    from search.typos import TypoSettings, Vocabulary, check_question, check_word

    t0 = time.perf_counter()
    counts = synthetic_vocabulary(base, factor)
    synth_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    vocab = Vocabulary.from_counts(counts)
    build_s = time.perf_counter() - t0
    del counts
    s = TypoSettings()
    per_word: dict[str, list[float]] = {"unknown": [], "known": []}
    for w in words:
        check_word(w, vocab, s)  # warm
        t = time.perf_counter()
        c = check_word(w, vocab, s)
        per_word["known" if c.known else "unknown"].append(time.perf_counter() - t)
    per_q: list[float] = []
    lookups: list[int] = []
    for q in questions:
        t = time.perf_counter()
        c = check_question(q, vocab, s)
        per_q.append(time.perf_counter() - t)
        lookups.append(sum(1 for w in c.words if w.skip is None))
    ms = 1000.0
    return {
        "factor": factor,
        "words": len(vocab),
        "synth_s": synth_s,
        "build_s": build_s,
        "mb": vocab_bytes(vocab) / 1e6,
        "unknown_p50": statistics.median(per_word["unknown"]) * ms,
        "unknown_p99": _pct(per_word["unknown"], 99) * ms,
        "known_p50": statistics.median(per_word["known"]) * ms,
        "known_p99": _pct(per_word["known"], 99) * ms,
        "q_p50": statistics.median(per_q) * ms,
        "q_p95": _pct(per_q, 95) * ms,
        "q_p99": _pct(per_q, 99) * ms,
        "lookups": statistics.mean(lookups),
        "n_unknown": len(per_word["unknown"]),
        "n_known": len(per_word["known"]),
    }


def lookup_inputs(bench_root: Path, seed: int, n: int = 2000) -> tuple[list[str], list[str]]:
    """(questions, words) for the lookup measurements: GermanQuAD's questions with
    generated typos, and ``n`` word tokens of gnad-test (5+ letters, no stopwords, drawn
    from the running text so frequent words come up as often as in text) plus a
    mistyped copy of each."""
    from benchmarks.speed import load_gnad
    from search.evaluate import load_corpus, load_queries
    from search.typos import WordStats

    rng = random.Random(seed)
    tokens = []
    for _, text in load_gnad(bench_root / "gnad-test" / "articles.csv"):
        tokens += [w for _, _, _, w in surface_words(text) if w and len(w) >= 5]
    tokens = [w for w in tokens if w.isalpha() and w not in STOPWORDS]
    known = [tokens[rng.randrange(len(tokens))] for _ in range(n)]
    vocab = set(tokens)
    typed = [mistype(w, rng)[0] for w in known]
    unknown = [fold(w) for w in typed if fold(w) not in vocab]
    gq = bench_root / "germanquad"
    questions = []
    if (gq / "queries.jsonl").is_file():
        stats = WordStats()
        stats.add_all(d.text for d in load_corpus(gq / "corpus.jsonl"))
        for q in load_queries(gq / "queries.jsonl"):
            questions.append(
                typo_question(q.text, stats.df, question_rng(seed, "germanquad", q.id)).text
            )
    return questions, known + unknown


def lookup_markdown(rows: Sequence[dict[str, float]], n_questions: int) -> str:
    lines = [
        "## Lookup cost of `search.typos`\n",
        "Vocabulary: the folded words of gnad-test (1,028 articles) at 1x; 10x and 100x are "
        "synthesised from them (`synthetic_vocabulary`: inflections, compounds and "
        "recombinations of gnad words, with the 1x first-letter and length distribution, so "
        "every slice a lookup scans grows 10x / 100x; document frequencies drawn from the 1x "
        "distribution). By Heaps' law a corpus 100x as large has only about 15-25x the "
        "vocabulary, so the 100x row is a pessimistic bound for a 100x corpus. "
        f"Per question: {n_questions} typo'd GermanQuAD questions against that vocabulary "
        "(a news vocabulary, so Wikipedia words are often unknown and looked up: "
        "pessimistic). Per word: mistyped gnad words (unknown) and gnad words (known). "
        "Times in ms, one thread, after one warm-up lookup per word.\n",
        "| size | words | build s | arrays MB | per unknown word p50 / p99 | per known word "
        "p50 / p99 | per question p50 / p95 / p99 | lookups per question |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['factor']}x | {r['words']:,} | {r['build_s']:.2f} | {r['mb']:.1f} | "
            f"{r['unknown_p50']:.3f} / {r['unknown_p99']:.3f} | "
            f"{r['known_p50']:.3f} / {r['known_p99']:.3f} | "
            f"{r['q_p50']:.3f} / {r['q_p95']:.3f} / {r['q_p99']:.3f} | {r['lookups']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def _bucket_scan(scorer):
    """Lookup over (first letter, length) buckets with rapidfuzz alone."""
    from rapidfuzz import process

    def scan(buckets, w, k):
        found = []
        for length in range(len(w) - k, len(w) + k + 1):
            choices = buckets.get((w[0], length))
            if choices:
                found += process.extract(w, choices, scorer=scorer, score_cutoff=k, limit=None)
        return found

    return scan


def _buckets(counts: Mapping[str, int]) -> dict[tuple[str, int], list[str]]:
    out: dict[tuple[str, int], list[str]] = {}
    for w in counts:
        out.setdefault((w[0], len(w)), []).append(w)
    return out


def _symspell(counts: Mapping[str, int]):
    from symspellpy import SymSpell

    sym = SymSpell(max_dictionary_edit_distance=2, prefix_length=7)
    for w, c in counts.items():
        sym.create_dictionary_entry(w, c)
    return sym


def _symspell_lookup(sym, w: str, k: int) -> list:
    from symspellpy import Verbosity

    found = sym.lookup(w, Verbosity.ALL, max_edit_distance=k, transfer_casing=False)
    return [x for x in found if x.term[:1] == w[:1]]


def _whoosh_reader(counts: Mapping[str, int]):
    from whoosh.fields import KEYWORD, Schema
    from whoosh.filedb.filestore import RamStorage

    ix = RamStorage().create_index(Schema(w=KEYWORD))
    writer = ix.writer()
    ordered = sorted(counts)
    for i in range(0, len(ordered), 500):
        writer.add_document(w=" ".join(ordered[i : i + 500]))
    writer.commit()
    return ix.reader()


def compare_libraries(
    base: Mapping[str, int], factors: Sequence[int], words: Sequence[str], n: int = 400
) -> list[tuple[str, int, float, float, float, float]]:
    """(method, factor, build s, MB, p50 ms, p99 ms) per word for the lookup options:
    ``search.typos`` (slice + signature + rapidfuzz OSA), rapidfuzz alone over the same
    (first letter, length) buckets with OSA and with true Damerau-Levenshtein,
    symspellpy (max distance 2, prefix 7; first letter checked afterwards; up to 10x)
    and Whoosh's ``terms_within`` (prefix 1) on a field holding the vocabulary (1x
    only: slow)."""
    import psutil
    from rapidfuzz.distance import OSA as OSA_
    from rapidfuzz.distance import DamerauLevenshtein

    from search.typos import TypoSettings, Vocabulary

    s = TypoSettings()
    eligible = [w for w in words if len(w) >= s.min_length_one]
    sample = eligible[:: max(1, len(eligible) // n)][:n]  # known and mistyped alike
    proc = psutil.Process()
    out = []
    for factor in factors:
        counts = synthetic_vocabulary(base, factor)
        methods = [
            (
                "search.typos (slice + signature + rapidfuzz OSA)",
                Vocabulary.from_counts,
                lambda v, w, k: v.neighbours(w, k),
                vocab_bytes,
            ),
            ("rapidfuzz OSA, buckets only", _buckets, _bucket_scan(OSA_.distance), None),
            (
                "rapidfuzz true Damerau-Levenshtein, buckets only",
                _buckets,
                _bucket_scan(DamerauLevenshtein.distance),
                None,
            ),
        ]
        if factor <= 10:
            methods.append(
                ("symspellpy 6 (distance 2, prefix 7)", _symspell, _symspell_lookup, None)
            )
        if factor == 1:
            methods.append(
                (
                    "Whoosh terms_within (prefix 1)",
                    _whoosh_reader,
                    lambda r, w, k: list(r.terms_within("w", w, k, prefix=1)),
                    None,
                )
            )
        for name, build, lookup, size_of in methods:
            rss = proc.memory_info().rss
            t0 = time.perf_counter()
            state = build(counts)
            build_s = time.perf_counter() - t0
            mb = size_of(state) / 1e6 if size_of else (proc.memory_info().rss - rss) / 1e6
            times = []
            for w in sample if "Whoosh" not in name else sample[:100]:
                t = time.perf_counter()
                lookup(state, w, s.allowed_edits(w))
                times.append(time.perf_counter() - t)
            out.append(
                (name, factor, build_s, mb, statistics.median(times) * 1e3, _pct(times, 99) * 1e3)
            )
            print(f"  {out[-1]}", file=sys.stderr)
            del state
    return out


def compare_markdown(rows, n: int) -> str:
    lines = [
        "## Lookup options compared (per word)\n",
        f"{n} words (gnad words and mistyped copies, half each, 5+ letters), each looked up "
        "with the edits its length allows: all vocabulary words within them with the same "
        "first letter (`Vocabulary.neighbours` for `search.typos`, without its shortcut for "
        "frequent known words); Whoosh on the first 100 words only. ms per word. MB: the "
        "arrays for `search.typos`, the process's RSS growth for the others (approximate; "
        "0 where the structure reuses memory already held).\n",
        "| method | size | build s | MB | p50 ms | p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for name, factor, build_s, mb, p50, p99 in rows:
        lines.append(f"| {name} | {factor}x | {build_s:.2f} | {mb:.0f} | {p50:.3f} | {p99:.3f} |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench-root", type=Path, default=ROOT.parent / "shared" / "bench")
    ap.add_argument("--sets", default="", help="comma-separated set names (default: all)")
    ap.add_argument("--tolerance", default="off,on", help=", ".join(TOLERANCES))
    ap.add_argument("--sizes", default="1,10,100", help="vocabulary factors for the lookup cost")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument(
        "--penalties", default="", help="also BM25 at these score_penalty values, e.g. 0.5,0.9"
    )
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--skip-lookup", action="store_true")
    ap.add_argument(
        "--compare", action="store_true", help="also time symspellpy, Whoosh, rapidfuzz alone"
    )
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "typos.md")
    args = ap.parse_args()
    tolerances = [t.strip() for t in args.tolerance.split(",") if t.strip()]
    bad = [t for t in tolerances if t not in TOLERANCES]
    if bad:
        sys.exit(f"error: --tolerance {','.join(bad)} is unknown: use {', '.join(TOLERANCES)}")
    parts = [
        "# Typo robustness\n",
        f"Measured {date.today().isoformat()} with `.venv/bin/python benchmarks/typos.py "
        + " ".join(sys.argv[1:])
        + "` (2 CPU cores shared with other work: timings are noisy).\n",
    ]
    results: list[SetResult] = []
    if not args.skip_quality:
        names = [n for n in args.sets.split(",") if n] or None
        sets = find_query_sets(args.bench_root, names)
        if not sets:
            sys.exit(f"error: no benchmark sets with queries.jsonl under {args.bench_root}")
        for d in sets:
            print(f"{d.name} ...", file=sys.stderr)
            penalties = [float(x) for x in args.penalties.split(",") if x.strip()]
            results.append(measure_set(d, tolerances, args.seed, penalties))
        parts.append(quality_markdown(results, args.seed))
        for r in results:
            if r.name == "germanquad":
                parts.append(real_typo_markdown(r))
    if not args.skip_lookup:
        questions, words = lookup_inputs(args.bench_root, args.seed)
        base = gnad_counts(args.bench_root / "gnad-test" / "articles.csv")
        rows = []
        for f in (int(x) for x in args.sizes.split(",")):
            print(f"lookup {f}x ...", file=sys.stderr)
            rows.append(measure_lookup(base, f, questions, words))
            print(f"  {rows[-1]}", file=sys.stderr)
        parts.append(lookup_markdown(rows, len(questions)))
        if args.compare:
            sizes = [f for f in (int(x) for x in args.sizes.split(",")) if f <= 10]
            rows = compare_libraries(base, sizes, words)
            parts.append(compare_markdown(rows, min(400, len(words))))
    text = "\n".join(parts)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
