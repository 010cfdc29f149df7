"""Typo correction against the index vocabulary (search.typos) and the benchmark's
typo generator (benchmarks/typos.py): length rules, first letter, transpositions,
exact before typo, umlauts and ß, phrases, numbers, ties, the displayed question."""

from __future__ import annotations

import random

import pytest
from rapidfuzz.distance import OSA

from benchmarks.typos import (
    NEIGHBOURS,
    apply_error,
    content_words,
    question_rng,
    typo_question,
)
from indexer.analysis import STOPWORDS, analyze, analyze_query, fold, tokenize
from indexer.errors import QueryError
from search.bm25 import term_weights
from search.typos import (
    Correction,
    Skip,
    TypoSettings,
    Vocabulary,
    WordStats,
    apply_corrections,
    check_question,
    check_word,
    passage_spellings,
    plan_query,
    quoted_spans,
    signature,
    surface_words,
    word_document_counts,
)

PASSAGES = [
    "London ist die Hauptstadt Großbritanniens.",
    "Die Hauptstadt Frankreichs ist Paris, die Hauptstadt Deutschlands ist Berlin.",
    "Berlin ist die größte Stadt Deutschlands; London liegt an der Themse.",
    "Der Suezkanal verbindet das Mittelmeer mit dem Roten Meer.",
    "Die Straße in München ist gesperrt, sagt die Polizei in München.",
    "Wassiljew wurde 1950 in Moskau geboren.",
    "Der Expressionismus war eine Literaturströmung in Deutschland.",
]


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    stats = WordStats()
    stats.add_all(PASSAGES)
    return Vocabulary.from_stats(stats)


def corrected(question: str, vocab: Vocabulary, **settings) -> str:
    return check_question(question, vocab, TypoSettings(**settings)).corrected()


# ------------------------------------------------------------------ length rules


def test_four_letter_words_are_never_changed(vocab):
    # "Pars" is one edit from "Paris", but 4 letters are below the 5-letter minimum
    check = check_question("Pars", vocab)
    assert check.words[0].skip is Skip.SHORT
    assert check.corrections == ()
    assert corrected("Pars", vocab, min_length_one=4) == "Paris"


def test_five_letters_allow_one_edit(vocab):
    assert corrected("Londn", vocab) == "London"
    assert check_question("Londn", vocab).words[0].correction.edits == 1


def test_two_edits_only_from_nine_letters(vocab):
    # 9 letters, two edits (swap + dropped letter): corrected
    assert corrected("Wo ist die Hauptsatd?", vocab) == "Wo ist die Hauptstadt?"
    # 8 letters, two dropped letters: only one edit allowed, so nothing changes
    check = check_question("Haupstat", vocab)
    assert check.words[0].skip is None and check.corrections == ()
    assert corrected("Haupstat", vocab, min_length_two=8) == "Hauptstadt"


def test_first_letter_is_never_changed(vocab):
    # one substitution away from "london", but in the first letter
    assert check_question("Bondon", vocab).corrections == ()
    assert corrected("Lindon", vocab) == "London"


def test_a_transposition_counts_as_one_edit(vocab):
    # "Lodnon" is 2 edits under plain Levenshtein, 1 under OSA: allowed at 6 letters
    c = check_question("Lodnon", vocab).words[0].correction
    assert (c.to_word, c.edits) == ("london", 1)


# -------------------------------------------------------------- exact vs typo


def test_a_known_word_is_not_corrected(vocab):
    check = check_question("Hauptstadt London", vocab)
    assert [w.known for w in check.words] == [True, True]
    assert check.corrections == ()
    assert check.corrected() == "Hauptstadt London"


def test_typo_candidates_weigh_less_than_an_exact_match(vocab):
    c = check_question("Hauptsatd", vocab).words[0].correction
    assert c.edits == 2
    assert c.weight == pytest.approx(0.64)  # score_penalty 0.8 per edit
    assert 0 < TypoSettings(score_penalty=0.9).score_penalty ** 1 < 1


def test_a_known_word_far_rarer_than_a_neighbour_gets_candidates_but_stays():
    vocab = Vocabulary.from_counts({"hauptstadt": 200, "hauptstadl": 1})
    w = check_question("Hauptstadl", vocab).words[0]
    assert w.known and w.correction is None  # never replaced: an exact match exists
    assert [(c.to_word, c.edits) for c in w.candidates] == [("hauptstadt", 1)]
    assert w.candidates[0].weight < 1
    # not far rarer (ratio 50 needs 50 documents): no candidates at all
    vocab = Vocabulary.from_counts({"hauptstadt": 49, "hauptstadl": 1})
    assert check_question("Hauptstadl", vocab).words[0].skip is Skip.FREQUENT


def test_an_unknown_word_without_candidates_changes_nothing(vocab):
    check = check_question("Wer erfand Quastenflosser?", vocab)
    assert check.corrections == ()
    assert check.corrected() == "Wer erfand Quastenflosser?"
    assert check.to_json() == []


def test_an_unknown_inflection_of_an_index_stem_is_left_alone(vocab):
    # "Hauptstädte" is not in the texts, but its stem is an index term: BM25 finds
    # it as typed, so it is not replaced by the nearest surface word
    terms = {t for p in PASSAGES for t in analyze(p)}
    assert "hauptstadte" not in vocab and analyze("Hauptstädte")[0] in terms
    check = check_question("Hauptstädte", vocab, terms=terms)
    assert check.words[0].skip is Skip.STEM and check.corrections == ()
    # a real typo still is corrected with the terms given
    assert check_question("Hauptsatd", vocab, terms=terms).corrected() == "Hauptstadt"


# ------------------------------------------------------------ umlauts and ß


def test_ss_for_sharp_s_is_the_same_word(vocab):
    check = check_question("Strasse Grossbritanniens", vocab)
    assert all(w.known for w in check.words)
    assert check.corrected() == "Strasse Grossbritanniens"  # unchanged words as typed


def test_umlaut_spellings_find_the_word(vocab):
    # with ae/oe/ue folding in the analysis "Muenchen" is the same word; without it,
    # one edit away: either way the question finds "München"
    check = check_question("Muenchen", vocab)
    if fold("Muenchen") == fold("München"):
        assert check.words[0].known and check.corrections == ()
    else:
        assert check.corrected() == "München"
    assert corrected("Sueskanal", vocab) == "Suezkanal"


def test_corrections_show_the_vocabulary_spelling(vocab):
    # "Großbritanniens" is stored folded; the display keeps the text's spelling
    assert corrected("Großbritaniens", vocab) == "Großbritanniens"
    assert corrected("Literauturströmung", vocab) == "Literaturströmung"


# --------------------------------------------------------- words never fuzzed


def test_words_in_quotes_are_never_changed(vocab):
    check = check_question('"Hauptsatd Londn" Berlni', vocab)
    assert [w.skip for w in check.words[:2]] == [Skip.PHRASE, Skip.PHRASE]
    assert check.corrected() == '"Hauptsatd Londn" Berlin'
    assert corrected("„Londn“ Londn", vocab) == "„Londn“ London"
    # an unpaired quote is plain text
    assert corrected('"Londn', vocab) == '"London'


def test_quoted_spans_pair_quote_marks_in_order():
    text = 'a "b c" d „e“ "f'
    assert [text[a:b] for a, b in quoted_spans(text)] == ['"b c"', "„e“"]


def test_numbers_are_never_changed():
    vocab = Vocabulary.from_counts({"19500": 3, "covid": 2})
    check = check_question("19501 covid19", vocab)
    assert [w.skip for w in check.words] == [Skip.NUMBER, Skip.NUMBER]


def test_stopwords_are_never_changed():
    vocab = Vocabulary.from_counts({"welcher": 5})  # "welche" is not in it
    assert "welche" in STOPWORDS
    assert check_question("welche", vocab).words[0].skip is Skip.STOPWORD


def test_disabled_changes_nothing(vocab):
    check = check_question("Hauptsatd Londn", vocab, TypoSettings(enabled=False))
    assert {w.skip for w in check.words} == {Skip.DISABLED}
    assert check.corrected() == "Hauptsatd Londn"


def test_lookups_per_question_are_capped():
    vocab = Vocabulary.from_counts({"london": 1})
    question = " ".join(f"Londn{chr(97 + i)}" for i in range(5))  # five unknown words
    check = check_question(question, vocab, TypoSettings(max_lookups=3))
    assert [w.skip for w in check.words] == [None, None, None, Skip.LIMIT, Skip.LIMIT]


# --------------------------------------------------------- ranking and ties


def test_ties_break_by_document_frequency_then_alphabetically():
    vocab = Vocabulary.from_counts({"mantel": 3, "mantal": 3, "mantil": 5, "mantul": 3})
    words = [c.to_word for c in check_word("mantol", vocab, TypoSettings()).candidates]
    assert words == ["mantil", "mantal", "mantel"]  # max_candidates 3
    # the same whatever order the counts come in
    again = Vocabulary.from_counts(dict(reversed(list(vocab_counts(vocab).items()))))
    assert [c.to_word for c in check_word("mantol", again, TypoSettings()).candidates] == words


def vocab_counts(vocab: Vocabulary) -> dict[str, int]:
    return {w: vocab.df(w) for w in ("mantel", "mantal", "mantil", "mantul")}


def test_a_frequent_two_edit_word_beats_a_rare_one_edit_word():
    vocab = Vocabulary.from_counts({"hauptstadt": 100, "hauptsatz": 1})
    cands = check_word("hauptsatd", vocab, TypoSettings()).candidates
    assert [(c.to_word, c.edits) for c in cands] == [("hauptstadt", 2), ("hauptsatz", 1)]
    # with edit_prior 0.005 a second edit costs 200x: the rare one-edit word wins
    cands = check_word("hauptsatd", vocab, TypoSettings(edit_prior=0.005)).candidates
    assert cands[0].to_word == "hauptsatz"


def test_confident_only_when_one_candidate_dominates():
    counts = {"mantel": 40, "mantil": 1, "kanzler": 9, "kanzlei": 8}
    vocab = Vocabulary.from_counts(counts, {"mantel": "Mantel", "kanzler": "Kanzler"})
    check = check_question("Mantol Kanzlex", vocab)
    assert [w.confident for w in check.words] == [True, False]
    assert check.corrected() == "Mantel Kanzler"
    assert check.corrected(confident_only=True) == "Mantel Kanzlex"


def test_display_keeps_spacing_casing_and_punctuation(vocab):
    question = "Wo  liegt die HAUPTSTADT von Großbritaniens? (Londn)"
    check = check_question(question, vocab)
    assert check.corrected() == "Wo  liegt die HAUPTSTADT von Großbritanniens? (London)"
    assert check.to_json() == [
        {"from": "Großbritaniens", "to": "Großbritanniens"},
        {"from": "Londn", "to": "London"},
    ]


def test_repeated_words_get_the_same_correction(vocab):
    assert corrected("Londn oder Londn", vocab) == "London oder London"


# ------------------------------------------------------------- the lookup


def test_neighbours_equal_a_brute_force_search():
    """The length slice and letter-signature prefilter drop no true candidate."""
    rng = random.Random(5)
    alphabet = "aabeeinnrsstuöß"
    words = {"".join(rng.choice(alphabet) for _ in range(rng.randint(3, 11))) for _ in range(3000)}
    counts = {w: rng.randint(1, 9) for w in words}
    vocab = Vocabulary.from_counts(counts)
    for _ in range(300):
        q = "".join(rng.choice(alphabet) for _ in range(rng.randint(5, 10)))
        for k in (1, 2):
            expected = {
                (w, OSA.distance(q, w))
                for w in words
                if w[0] == q[0] and w != q and OSA.distance(q, w) <= k
            }
            assert {(w, e) for w, e, _ in vocab.neighbours(q, k)} == expected


def test_signature_differs_by_at_most_one_bit_each_way_per_edit():
    a, b = signature("strasse"), signature("strase")
    assert bin(a & ~b).count("1") <= 1 and bin(b & ~a).count("1") <= 1


def test_arrays_round_trip(vocab):
    again = Vocabulary.from_arrays(vocab.to_arrays())
    assert len(again) == len(vocab)
    for w in ("london", "grossbritanniens", "munchen", "nichtda"):
        assert (again.df(w), again.display(w)) == (vocab.df(w), vocab.display(w))
    assert corrected("Großbritaniens", again) == "Großbritanniens"


# --------------------------------------------------------------- counting


def test_word_counts_are_per_passage_and_subtract_exactly():
    counts = word_document_counts(["Berlin, Berlin!", "Berlin liegt an der Spree."])
    assert counts["berlin"] == 2 and counts["spree"] == 1
    full = WordStats()
    full.add_all(PASSAGES)
    full.add("Die Straße heißt Hauptstraße.")
    full.add("Die Straße heißt Hauptstraße.", sign=-1)
    fresh = WordStats()
    fresh.add_all(PASSAGES)
    assert full == fresh
    fresh.add_all(PASSAGES[:2], sign=-1)
    rest = WordStats()
    rest.add_all(PASSAGES[2:])
    assert fresh == rest
    assert WordStats.from_json(rest.to_json()) == rest


def test_display_is_the_most_frequent_spelling():
    stats = WordStats()
    stats.add_all(["Die Straße.", "Straße und STRASSE", "strasse"])
    assert stats.display("strasse") == "Straße"
    assert Vocabulary.from_stats(stats).display("strasse") == "Straße"


def test_surface_words_fold_like_the_analysis():
    for text in PASSAGES + ["Jong-Un trifft İstanbuls Bürgermeister"]:
        words = list(surface_words(text))
        assert [p for _, _, typed, _ in words for p in tokenize(typed)] == tokenize(text)
        assert all(w == tokenize(typed)[0] for _, _, typed, w in words if w is not None)
        assert set(passage_spellings(text)) == set(tokenize(text))


# --------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"min_length_one": 1}, "min_length_one"),
        ({"min_length_one": 6, "min_length_two": 5}, "min_length_two"),
        ({"score_penalty": 1.0}, "score_penalty"),
        ({"edit_prior": 0}, "edit_prior"),
        ({"confident_share": 0.5}, "confident_share"),
        ({"rare_ratio": 0.5}, "rare_ratio"),
        ({"max_candidates": 0}, "max_candidates"),
        ({"enabled": "yes"}, "enabled"),
    ],
)
def test_bad_settings_name_the_value(kwargs, name):
    with pytest.raises(QueryError, match=name):
        TypoSettings(**kwargs)


# -------------------------------------------------------------- generator


DF = {"hauptstadt": 3, "grossbritanniens": 1, "london": 9, "liegt": 40, "themse": 2}


def test_generator_is_deterministic():
    q = "Wo liegt die Hauptstadt Großbritanniens an der Themse?"
    a = typo_question(q, DF, question_rng(17, "set", "q1"))
    b = typo_question(q, DF, question_rng(17, "set", "q1"))
    assert a == b and a.text != q
    others = {typo_question(q, DF, question_rng(s, "set", "q1")).text for s in range(20)}
    assert len(others) > 5


def test_generator_changes_only_the_rarest_content_words():
    q = "Wo liegt die Hauptstadt Großbritanniens an der Themse, 1950?"
    assert [w for _, _, w in content_words(q, DF)] == [
        "Großbritanniens",
        "Themse",
        "Hauptstadt",
        "liegt",
    ]
    for seed in range(50):
        t = typo_question(q, DF, question_rng(seed, "set", "q"))
        assert 1 <= len(t.changes) <= 2
        assert {c.original for c in t.changes} <= {"Großbritanniens", "Themse"}
        kept = [w for w in q.split() if w.strip("?,") not in {"Großbritanniens", "Themse"}]
        assert all(w in t.text.split() for w in kept)  # stopwords, numbers untouched


def test_generator_keeps_the_first_letter():
    rng = random.Random(3)
    for word in ["Hauptstadt", "Äpfel", "Straße", "Übersicht", "Wassiljew", "Ölpreis"] * 30:
        for kind in ("neighbour", "swap", "drop", "double", "insert", "umlaut"):
            typo = apply_error(word, kind, rng)
            if typo is not None:
                assert fold(typo)[0] == fold(word)[0], (word, kind, typo)
                assert typo != word


def test_error_kinds_do_what_they_say():
    rng = random.Random(1)
    assert OSA.distance("hauptstadt", apply_error("hauptstadt", "swap", rng)) == 1
    assert len(apply_error("hauptstadt", "drop", rng)) == 9
    doubled = apply_error("hauptstadt", "double", rng)
    assert len(doubled) == 11 and any(a == b for a, b in zip(doubled, doubled[1:], strict=False))
    sub = apply_error("hauptstadt", "neighbour", rng)
    (i,) = [i for i in range(10) if sub[i] != "hauptstadt"[i]]
    assert sub[i] in NEIGHBOURS["hauptstadt"[i]]
    assert apply_error("Straße", "umlaut", rng) == "Strasse"
    assert apply_error("Hauptstadt", "umlaut", rng) is None
    assert set(NEIGHBOURS["g"]) == set("tzfhvb")


# ------------------------------------------------------------- query plans


def clause_weights(plan) -> dict[str, float]:
    """Body-field weight of each BM25 term of a plan."""
    return {t: w for f, t, w in term_weights(plan.concepts, 0.0, plan.factors) if f == "body"}


def test_plan_keeps_the_typed_word_and_adds_its_correction_weighed_down(vocab):
    plan = plan_query("Hauptsatd Großbritanniens", vocab)
    weights = clause_weights(plan)
    assert weights[analyze("Hauptsatd")[0]] == 1.0  # the word as typed keeps its terms
    assert weights[analyze("Hauptstadt")[0]] == pytest.approx(0.64)  # two edits: 0.8 ** 2
    assert plan.corrections == (Correction("Hauptsatd", "Hauptstadt"),)
    assert plan.vector_text == plan.shown == "Hauptstadt Großbritanniens"


def test_an_exact_match_outweighs_a_typo_match_of_the_same_word():
    vocab = Vocabulary.from_counts({"hauptstadt": 200, "hauptstadl": 1})
    weights = clause_weights(plan_query("Hauptstadl", vocab))
    assert weights[analyze("Hauptstadl")[0]] == 1.0
    assert weights[analyze("Hauptstadt")[0]] == pytest.approx(0.8)  # one edit
    assert plan_query("Hauptstadl", vocab).corrections == ()  # known: not reported


def test_a_question_without_typos_is_planned_exactly_as_typed(vocab):
    for q in ("Hauptstadt London", "Wer erfand Quastenflosser?", "Die Straße in München"):
        plan = plan_query(q, vocab)
        assert list(plan.concepts) == analyze_query(q) and set(plan.factors) <= {1.0}
        assert plan.corrections == () and plan.vector_text == q


def test_umlaut_and_sharp_s_corrections_are_shown_as_the_corpus_spells_them(vocab):
    plan = plan_query("Strase in Munchen", vocab)
    assert plan.corrections == (Correction("Strase", "Straße"),)  # München: known folded
    assert plan.shown == "Straße in Munchen"
    assert plan_query("Grossbritanien", vocab).shown == "Großbritanniens"


def test_quoted_words_add_no_candidates(vocab):
    plan = plan_query('"Hauptsatd" Londn', vocab)
    assert plan.corrections == (Correction("Londn", "London"),)
    assert analyze("Hauptstadt")[0] not in clause_weights(plan)
    assert plan.shown == '"Hauptsatd" London'


def test_off_or_without_vocabulary_the_plan_is_the_query(vocab):
    for plan in (
        plan_query("Hauptsatd", vocab, TypoSettings(enabled=False)),
        plan_query("Hauptsatd", None),
    ):
        assert plan.concepts == (("hauptsatd",),) and plan.factors == (1.0,)
        assert plan.corrections == () and plan.vector_text == "Hauptsatd"


def test_only_the_confident_corrections_reach_the_vector_text():
    vocab = Vocabulary.from_counts({"london": 10, "landon": 9})
    plan = plan_query("Lndon", vocab)  # london and landon: one edit each, near-even
    assert plan.corrections and not plan.confident
    assert plan.vector_text == "Lndon" and plan.shown != "Lndon"


def test_candidates_with_a_small_share_are_not_searched():
    vocab = Vocabulary.from_counts({"london": 100, "landon": 5})
    london, landon = analyze("london")[0], analyze("landon")[0]
    assert set(clause_weights(plan_query("Lndon", vocab))) == {analyze("Lndon")[0], london}
    everything = plan_query("Lndon", vocab, TypoSettings(min_share=0.0))
    assert {london, landon} <= set(clause_weights(everything))


def test_a_candidate_term_already_in_the_query_is_not_added_again(vocab):
    weights = clause_weights(plan_query("London Londn", vocab))
    assert weights[analyze("London")[0]] == 1.0


def test_apply_corrections_replaces_whole_words_outside_quotes():
    fixes = [Correction("Londn", "London")]
    assert apply_corrections('"Londn" Londn, Londner', fixes) == '"Londn" London, Londner'
    assert apply_corrections("Londn", []) == "Londn"


def test_corrections_are_validated_and_serialised():
    assert Correction("Wafen", "Waffen").to_dict() == {"from": "Wafen", "to": "Waffen"}
    with pytest.raises(QueryError, match="to=''"):
        Correction("Wafen", "")
    with pytest.raises(QueryError, match="min_share"):
        TypoSettings(min_share=1.5)
