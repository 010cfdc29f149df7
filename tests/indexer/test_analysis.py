"""German analysis: the terms a query shares with a passage decide the BM25 match."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.analysis import (
    STOPWORDS,
    analyze,
    analyze_query,
    fold,
    split_compound,
    stem,
    tokenize,
    word_spans,
)


def shared(a: str, b: str) -> set[str]:
    return set(analyze(a)) & set(analyze(b))


def test_question_matches_compound_noun_by_inflection_and_decompounding():
    # "liefert" ~ "-lieferungen", "Waffen" ~ "Waffen-": both terms found in the compound.
    common = shared("Wer liefert Waffen?", "Waffenlieferungen")
    assert len(common) == 2
    assert common == set(analyze("Wer liefert Waffen?"))


def test_question_matches_infinitive_phrase():
    common = shared("Wer liefert Waffen?", "Waffen an Moskau zu liefern")
    assert common == set(analyze("Wer liefert Waffen?"))


def test_compound_keeps_its_own_stem_and_adds_parts():
    terms = analyze("Waffenlieferungen")
    assert terms[0] == stem("waffenlieferungen")
    assert set(analyze("Waffen")) <= set(terms)
    assert set(analyze("Lieferung")) <= set(terms)
    assert split_compound("waffenlieferungen") == ("waffen", "lieferungen")


@pytest.mark.parametrize("word", ["liefert", "liefern", "Lieferung", "Lieferungen", "geliefert"])
def test_inflections_share_one_stem(word):
    assert analyze(word) == analyze("liefern")


def test_short_and_unsplittable_words_are_not_decompounded():
    assert split_compound("waffen") == ()
    assert split_compound("moskau") == ()


def test_german_stopwords_are_removed():
    assert analyze("der die das und oder aber nicht mit von zu") == []
    assert analyze("Wer wie wann warum") == []
    # Content words survive in the middle of stopwords.
    assert analyze("Die Ukraine und der Krieg") == analyze("Ukraine Krieg")
    assert "und" in STOPWORDS and "ukraine" not in STOPWORDS


def test_stopword_with_umlaut_or_eszett_is_removed_in_any_spelling():
    assert analyze("für über während daß") == []
    assert analyze("FÜR ÜBER DASS") == []


def test_hyphenated_name_analyses_like_spaced_name():
    assert analyze("Kim Jong-Un") == analyze("Kim Jong Un")
    assert analyze("Kim Jong-Un") == ["kim", "jong", "un"]


def test_punctuation_splits_words():
    assert analyze("Waffen, Munition; Panzer!") == analyze("Waffen Munition Panzer")
    assert tokenize("UN-Sanktionen.") == ["un", "sanktionen"]


def test_eszett_and_ss_are_the_same():
    assert analyze("Straße") == analyze("Strasse") == analyze("STRASSE")
    assert analyze("Fußball") == analyze("Fussball")
    assert fold("ẞ") == fold("ß") == "ss"


def test_umlauts_are_folded_consistently():
    assert analyze("Größe") == analyze("Grösse") == analyze("Grosse")
    assert analyze("Ärzte") == analyze("Arzte") == analyze("ÄRZTE")
    assert analyze("Süddeutschland") == analyze("SÜDDEUTSCHLAND")


@pytest.mark.parametrize(
    ("written", "umlaut"),
    [
        ("Mueller", "Müller"),
        ("Muenchen", "München"),
        ("Koeln", "Köln"),
        ("Aerzte", "Ärzte"),
        ("Oelpreise", "Ölpreise"),
        ("Duesseldorfer", "Düsseldorfer"),
        ("MUELLABFUHR", "Müllabfuhr"),
    ],
)
def test_ae_oe_ue_spelling_matches_the_umlaut(written, umlaut):
    assert analyze(written) == analyze(umlaut)
    assert analyze(written)


def test_ue_oe_for_umlaut_in_a_stopword_is_a_stopword():
    assert analyze("fuer ueber waehrend") == []


@pytest.mark.parametrize("word", ["Feuer", "Bauer", "Queue", "neue", "Steuer", "Abenteuer"])
def test_ue_after_a_vowel_or_q_is_kept(word):
    assert fold(word) == word.lower()
    # ... so the word does not merge with its e-less neighbour.
    assert not set(analyze(word)) & set(analyze(word.replace("ue", "u", 1)))


def test_words_with_ae_oe_ue_of_their_own_still_match_their_forms():
    assert analyze("Israels") == analyze("Israel")
    assert analyze("aktuellen") == analyze("aktuelle")
    # Europäer: the e after ä stays (Lucene's rule), so it still shares Europa's stem.
    assert analyze("Europäer")[0] == analyze("Europa")[0]


def test_dictionary_words_respelt_by_the_rule_are_not_split():
    # The dictionary has "eventuell"; folded it is "eventull", still one word
    # (not even + tull).
    assert split_compound(fold("eventuell")) == ()
    # Respelt foreign pieces of the dictionary (Dutch "voeren" -> "voren") are no
    # compound parts: words without ae/oe/ue are split as before.
    assert split_compound(fold("Vorentscheidungen")) == ()
    assert split_compound(fold("Waffenlieferungen")) == ("waffen", "lieferungen")


def _lucene_german_normalization(word: str) -> str:
    """Lucene's GermanNormalizationFilter, state by state (the reference)."""
    out, state = [], "N"
    for c in word:
        if c in "ao":
            state = "U"
        elif c == "u":
            state = "U" if state == "N" else "V"
        elif c == "e":
            if state == "U":
                state = "V"
                continue
            state = "V"
        elif c in "iqy":
            state = "V"
        elif c in "äöü":
            c, state = {"ä": "a", "ö": "o", "ü": "u"}[c], "V"
        elif c == "ß":
            c, state = "ss", "N"
        else:
            state = "N"
        out.append(c)
    return "".join(out)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="aeiouyqäöüßbnrt", max_size=12))
def test_fold_applies_lucenes_german_normalization(word):
    assert fold(word) == _lucene_german_normalization(word)


def test_nfd_umlaut_equals_composed_umlaut():
    composed = "Größe Ärzte Übung"
    decomposed = unicodedata.normalize("NFD", composed)
    assert decomposed != composed  # really o + combining diaeresis
    assert "o\u0308" in decomposed
    assert analyze(decomposed) == analyze(composed)
    assert analyze("Gro\u0308\u00dfe") == analyze("Größe")


def test_analysis_is_deterministic():
    text = (
        "Westliche Länder, Südkorea und die Ukraine werfen Nordkorea vor, Waffen an "
        "Moskau zu liefern – ein Verstoß gegen UN-Sanktionen."
    )
    first = analyze(text)
    assert first  # not trivially empty
    for _ in range(3):
        assert analyze(text) == first
    # The same word gives the same terms wherever it occurs.
    assert analyze(f"{text} {text}") == first + first


def test_word_spans_point_at_original_words():
    text = "Die Straße in München"
    spans = word_spans(text)
    words = [text[a:b] for a, b, _ in spans]
    assert words == ["Die", "Straße", "in", "München"]
    by_word = {text[a:b]: terms for a, b, terms in spans}
    assert by_word["Die"] == ()
    assert by_word["Straße"] == tuple(analyze("Strasse"))


def test_query_concepts_keep_each_words_terms_together():
    query = "Wie viele Nordkoreaner arbeiten im Ausland?"
    concepts = analyze_query(query)
    assert ("nordkorea", "nord", "korea") in concepts
    assert [t for c in concepts for t in c] == analyze(query)
    assert analyze_query("der die das") == []


def test_word_spans_agree_with_analyze():
    text = "Muenchner Müller-Brot: Israels Waffenlieferungen, Straße und Feuer"
    assert [t for _, _, terms in word_spans(text) for t in terms] == analyze(text)
    by_word = {text[a:b]: terms for a, b, terms in word_spans(text)}
    assert by_word["Muenchner"] == tuple(analyze("Münchner"))


def test_empty_and_symbol_only_text_gives_no_terms():
    assert analyze("") == []
    assert analyze("   ?! – … *") == []


def test_precomputed_lexicon_stems_match_the_stemmer():
    from indexer import analysis

    words, stems = analysis._lexicon()
    assert sorted(stems) == analysis.lexicon_stems(words), (
        "indexer/data/lexicon_stems.txt is out of date: regenerate it with "
        'python -c "import indexer.analysis as a; a.write_lexicon_stems()" '
        "and bump ANALYZER_VERSION"
    )
