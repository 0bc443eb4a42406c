"""Questions the engine cannot read are told so, and a long question is judged by what it asks,
not by every word it mentions on the way."""

from __future__ import annotations

import pytest

from rag import InputError
from rag.answering.language import foreign_language
from rag.answering.query import asking_part

TROOPS = "deploying a security force"


@pytest.mark.parametrize(
    "question,language",
    [
        ("Où le président français va-t-il rencontrer son homologue américain ?", "French"),
        ("Wo werden sich die beiden Präsidenten treffen und worüber sprechen sie?", "German"),
        ("¿Dónde se reunirán los dos presidentes y de qué hablarán?", "Spanish"),
        ("Dove si incontreranno i due presidenti e di cosa parleranno?", "Italian"),
        ("Где встретятся два президента?", "Cyrillic script"),
        ("两位总统将在哪里见面？", "CJK script"),
        ("أين سيلتقي الرئيسان؟", "Arabic script"),
    ],
)
def test_a_question_not_in_english_is_told_to_ask_in_english(pipeline, question, language):
    assert foreign_language(question) == language
    with pytest.raises(InputError) as err:
        pipeline.ask(question, mode="extractive")
    message = str(err.value)
    assert message.startswith("ask in English: ") and language in message
    assert "don't say" not in message


@pytest.mark.parametrize(
    "question",
    [
        "Where will Macron meet Trump?",
        "What does la vie en rose mean in the song?",  # a foreign phrase inside English
        "What did Le Pen say about the EU?",
        "Did the leaders die on the hill of their own rhetoric?",  # "die" is German too
        "How many grams of starter go in per loaf?",  # "per" is Italian too
        "Bake?",  # too short to tell: taken as English
        "What did Zelensky tell Макрон?",  # a name in another script
    ],
)
def test_english_questions_are_read_as_english(question):
    assert foreign_language(question) == ""


def test_a_passing_mention_does_not_refuse_a_long_question(pipeline):
    question = (
        "My colleague Priya brought this up over lunch on Tuesday and I forgot the "
        "details. Will France send combat troops to Ukraine?"
    )
    answer = pipeline.ask(question, mode="extractive")
    assert not answer.abstained, answer.note
    assert TROOPS in answer.text
    aside = "Will France send combat troops to Ukraine (Priya asked me this over lunch)?"
    answer = pipeline.ask(aside, mode="extractive")
    assert not answer.abstained and TROOPS in answer.text, answer.note


@pytest.mark.parametrize(
    "question,absent",
    [
        # the absent name is what the asking sentence is about
        (
            "I was reading about the summit over lunch. What did Priya say about the troops?",
            "Priya",
        ),
        # a context sentence the question points back to is part of the ask
        ("My colleague mentioned Kazakhstan. What did Macron say about it?", "Kazakhstan"),
        ("Will France send combat troops to Kazakhstan?", "Kazakhstan"),
    ],
)
def test_a_question_whose_key_term_is_absent_is_still_refused(pipeline, question, absent):
    from .scripted import doubting

    # the rules alone doubt it, and say why, but are not sure enough to refuse
    alone = pipeline.ask(question, mode="extractive")
    assert alone.outcome != "answer" and f"No document mentions “{absent}”." in alone.why
    # a reader that finds no passage answers it makes the refusal, naming what is missing
    judged = doubting(pipeline).ask(question, mode="extractive")
    assert judged.abstained, (judged.text, judged.note)
    assert judged.text == f"The documents don't say anything about {absent}."


def test_a_one_letter_name_is_something_to_look_up(pipeline):
    from rag.reading.terms import content_stems

    assert content_stems("What is R?") == {"r"} and content_stems("And what is K?") == {"k"}
    assert content_stems("Can I use A or 5?") == {
        "use",
        "5",
    }  # the pronoun and the article name nothing
    # the articles never mention R: the question is looked up, not told it names nothing
    answer = pipeline.ask("What is R?", mode="extractive")
    assert answer.outcome != "answer" and "names nothing" not in answer.text + answer.why
    answer = pipeline.ask("What did Macron say about R?", mode="extractive")
    assert answer.outcome != "answer" and "No document mentions “R”." in answer.why, answer.why


def test_the_asking_part_is_the_sentence_that_asks():
    assert asking_part("I saw Priya on Tuesday. Where will the leaders meet?") == (
        "Where will the leaders meet?"
    )
    assert (
        asking_part("Where will the leaders meet (Priya asked)?") == "Where will the leaders meet?"
    )
    assert (
        asking_part("Priya asked me. Where did they meet?")
        == "Priya asked me. Where did they meet?"
    )
    assert asking_part("Where will the leaders meet?") == "Where will the leaders meet?"


def test_the_stopwords_are_nltks_without_contractions_plus_words_that_name_nothing():
    from bm25s.stopwords import STOPWORDS_EN_PLUS as nltk

    from rag.reading.terms import STOPWORDS

    pieces = {w for w in nltk if "'" in w or f"{w}'t" in nltk} | {"ain", "ma"}
    assert set(nltk) - pieces <= STOPWORDS and not pieces & STOPWORDS
    assert STOPWORDS - set(nltk) == set(
        "also could either else ever let many might much must neither one ones ought per shall "
        "still upon us whose would yet".split()
    )


@pytest.mark.parametrize(
    "sentence,dated",
    [
        ("Observers warn that unity may fray without concrete actions.", False),
        ("Protesters march on the capital every week.", False),
        ("May I add one thing?", False),
        ("Children under 12 may enter free.", False),
        ("Up to 4 may share a table.", False),
        ("Theresa May resigned.", False),
        ("Results May Vary", False),
        ("It ends in May.", True),
        ("The talks began in May.", True),
        ("It opened on May 3, 2021.", True),
        ("On 3 March the troops left.", True),
        ("March 2022 saw the first shipments.", True),
    ],
)
def test_may_and_march_give_a_date_only_as_months(sentence, dated):
    """ "When did it start?" is abstained on unless a sentence found gives a date; the verb
    "may" once counted as the month and let an unrelated sentence answer it."""
    from rag.answering.query import read

    wanted = read("When did the war start?").asking.answer_type
    assert wanted.kind == "date"
    assert wanted.satisfied_by(sentence) is dated


@pytest.mark.parametrize(
    "question,action",
    [
        ("How do I reset a forgotten root password?", "reset"),
        ("How to install R on Windows?", "install"),
        ("How can I cite R in a paper?", "cite"),
        ("How would you describe the bakery?", ""),  # asks for a description, not an action
        ("How do they differ?", ""),
        ("How do I set up the starter?", ""),  # "set up" is not "set"
        ("How do I log in?", ""),
        ("How do I quickly mix it?", ""),  # an adverb first: not read
        ("How do I get help?", ""),  # a verb that names no particular action
        ("How does the vote work?", ""),
        ("What is the currency of France?", "currency"),
        ("What is the state of U.S. aid to Ukraine?", ""),  # "state" frames it (a common word)
        ("What kind of license is it?", ""),
    ],
)
def test_a_how_to_question_is_checked_for_its_action_only_when_it_names_one(question, action):
    from rag.answering.query import read

    assert read(question).asking.asked_for == action
