import pytest

from xsearch.corpus import read_corpus
from xsearch.corpus.taln import split_keywords
from xsearch.errors import InputError


def test_jsonl_reads_fields(tiny_corpus):
    docs = list(read_corpus(tiny_corpus))
    assert [d.doc_id for d in docs] == ["d1", "d2", "d3", "d4"]
    assert docs[0].lang == "fr" and docs[0].fields == {"year": 2010}
    assert docs[0].contents.startswith("Traduction automatique statistique\nNous")


@pytest.mark.parametrize("line,match", [
    ('{"id": "a", "text": "x", "lang": "fr"}\n{not json}\n', r"bad.jsonl:2: invalid JSON"),
    ('{"text": "x", "lang": "fr"}\n', r"bad.jsonl:1: record has no 'id'"),
    ('{"id": "a", "text": "x"}\n', r"no 'lang'"),
    ('{"id": "a", "text": "x", "lang": "fr"}\n{"id": "a", "text": "y", "lang": "fr"}\n', r":2: duplicate id 'a'"),
    ('{"id": "a", "text": "", "lang": "fr"}\n', r"neither title nor text"),
    ('["a"]\n', r"JSON object"),
])
def test_jsonl_errors_name_file_and_line(tmp_path, line, match):
    path = tmp_path / "bad.jsonl"
    path.write_text(line)
    with pytest.raises(InputError, match=match):
        list(read_corpus(path))


def test_taln_reader_keeps_english_metadata_as_fields(tmp_path):
    xml = tmp_path / "taln-2010.xml"
    xml.write_text("""<?xml version="1.0" encoding="UTF-8"?><conference><articles>
      <article id="taln-2010-long-001"><auteurs><auteur><prenom>A</prenom><nom>B</nom></auteur></auteurs>
        <titre>Un titre</titre><resume>Un résumé  en
        français.</resume><mots_cles>traduction; corpus</mots_cles>
        <title>A title</title><abstract>An abstract.</abstract><keywords>Machine Translation, corpus ; MT</keywords>
      </article>
      <article id="taln-2010-long-002"><titre>Sans résumé</titre><resume></resume></article>
    </articles></conference>""", encoding="utf-8")
    docs = list(read_corpus(xml))
    assert len(docs) == 1
    d = docs[0]
    assert (d.doc_id, d.lang, d.title, d.text) == ("taln-2010-long-001", "fr", "Un titre", "Un résumé en français.")
    assert d.fields["keywords_en"] == ["machine translation", "corpus", "mt"]
    assert d.fields["title_en"] == "A title" and d.fields["year"] == 2010 and d.fields["venue"] == "taln"
    assert "An abstract" not in d.contents


def test_taln_malformed_xml_names_file(tmp_path):
    bad = tmp_path / "taln-2000.xml"
    bad.write_text("<conference><articles><article id='x'></conference>")
    with pytest.raises(InputError, match="taln-2000.xml"):
        list(read_corpus(bad))


def test_split_keywords():
    assert split_keywords(" A, b ;c,, ") == ["a", "b", "c"]
