"""The one judge: what a reply states, contradictions, refusals, typed questions."""

from itertools import combinations

import pytest

from engine.data import evals as E
from engine.data import tasks as T
from engine.data import world as W
from engine.data.judge import is_refusal, judge, recognise, verify


@pytest.fixture(scope="module")
def world():
    return W.build_world(0)


@pytest.fixture(scope="module")
def capital(world):
    return T.curated_prompts(world)[0]  # "What is the capital of ...?"


def test_fact_replies_are_judged_on_what_they_state(capital):
    right, other = capital.answer, next(r for r in capital.rivals if r != capital.answer)
    table = [
        (f"The capital of X is {right}.", True),
        (f"{right}", True),  # a bare answer (a few-shot base model's) states it too
        (f"The capital of X is {right}. Answer: {other}", False),  # contradiction
        (f"The capital of X is {other}. Answer: {right}", False),
        (f"The capital of X is {other}.", False),
        ("I don't know.", False),
        ("", False),
    ]
    for reply, ok in table:
        v = judge(capital, reply)
        assert v.correct is ok, (reply, v)
        assert v.mark == ("✓" if ok else "✗")
    v = judge(capital, f"The capital of X is {right}. Answer: {other}")
    assert right in v.reason and other in v.reason and "contradicts" in v.reason


def test_numbers_every_stated_answer_counts():
    p = T.add_problem(457, 68, "What is 457 + 68?")
    assert verify(p, "Ones: ...\nAnswer: 525") == 1.0
    assert verify(p, "The total is $525.") == 1.0  # no Answer line: its last number
    assert judge(p, "Answer: 415\nno wait\nAnswer: 525.").correct is False  # contradiction
    assert judge(p, "Answer: 525\nAnswer: 415").reason.startswith("contradicts")
    assert verify(p, "Answer: 415") == 0.0 and verify(p, "") == 0.0 and verify(p, None) == 0.0
    d = T.dec_problem("9.11", "9.9", "Which is larger, 9.11 or 9.9?")
    assert verify(d, "Answer: 9.9") == 1.0 and verify(d, "Answer: 9.90") == 1.0
    assert verify(d, "Answer: 9.11") == 0.0


def test_unknown_people_need_a_refusal_that_invents_nothing(world):
    u = T.curated_prompts(world)[2]  # "Where does <nobody> live?"
    city = world.cities[0].name
    assert verify(u, "I don't know who Zed is.") == 1.0
    assert verify(u, "I do not know.") == 1.0
    assert judge(u, f"Zed lives in the city of {city}.").reason == f"invents {city}"
    assert judge(u, f"I don't know. Zed lives in {city}.").correct is False
    i = T.identity_problem("Who are you?")
    assert verify(i, W.IDENTITY) == 1.0 and verify(i, "I am a baker.") == 0.0


def test_one_refusal_matcher():
    for text in ("I don't know", "I do not know who", "i dont know", "I don’t know", "No idea."):
        assert is_refusal(text), text
    assert not is_refusal("I know: the capital is X.")


def test_typed_questions_are_recognised_and_others_are_not(world):
    c = world.countries[0]
    cases = {
        f"Tell me the capital of {c.name}.": c.capital,
        f"what's the capital city of {c.name.lower()}": c.capital,
        "What's 12 plus 34?": "46", "Add 12 and 34.": "46", "23+58": "81",
        "find the sum of 100 and 23": "123",
        "Tell me what 23 plus 48 is.": "71", "Could you add up 5 and 7 for me?": "12",
        "What do you get when 40 and 2 are added?": "42",
        "What is 12 plus 30, please?": "42", "If I add 12 to 30, what do I get?": "42",
        "What's 5 plus 7 equal to?": "12", "5 plus 7 is how much?": "12",
        "What do 5 and 7 add to?": "12",
        "How many r's are in strawberry?": "3",
        "Which one is more, 9.11 or 9.9?": "9.9",
        "When was Zorblaxo born?": W.IDK,
        # the wrappers people put around a question
        f"Could you tell me the capital of {c.name}?": c.capital,
        f"Hi, could you please tell me the capital of {c.name}?": c.capital,
        f"Can you tell me which river flows through {c.name}, please?": c.river,
        f"Please tell me when {world.people[0].name} was born.": str(world.people[0].born),
        "Could you tell me what 23 plus 19 is?": "42", "Please, what is 23 + 19?": "42",
        "Can you tell me how many r's are in strawberry? Thanks": "3",
    }
    for text, answer in cases.items():
        p = recognise(world, text)
        assert p is not None and p.answer == answer, text
    for text in ("Hello!", "Write a poem about the sea.", "What is love?", "",
                 "What is 12 minus 3?", "Tell me what 4 times 5 plus 2 is.",
                 "What is 2.5 plus 3?", "Add 1, 2 and 3.",
                 "What was the total rainfall in 2019 and 2020?",
                 "Add up the scores of 3 and 4 players.",
                 "What's the total score of teams 3 and 4?", "add pages 3 to 4",
                 "Could you write a poem?", "Please tell me a story.", "Tell me the capital.",
                 "Could you tell me something, please?"):
        assert recognise(world, text) is None
        assert judge(recognise(world, text), "anything").mark == "—"


def test_sft_targets_are_right_by_the_judge(world):
    judged = 0
    for conv in W.sft_conversations(world, labeler_error_rate=0.0, n=400):
        p = recognise(world, conv[0]["content"])
        if p is not None and p.family != "unknown":  # idk chats name nobody of the world
            assert verify(p, conv[1]["content"]) == 1.0, conv
            judged += 1
    assert judged > 250  # nearly every training question is one the judge recognises


def test_a_number_that_only_echoes_the_question_or_a_step_is_no_answer(world):
    d = T.dec_problem("9.11", "9.9", "Which is larger, 9.11 or 9.9?")
    assert judge(d, "Which is larger, 9.11 or 9.9?").correct is False
    assert judge(d, "Write both with 2 decimal places: 9.11 and 9.90.").correct is False
    assert judge(d, "9.9 is larger.").correct is True
    c = T.count_problem("strawberry", "r", "How many r's are in strawberry?")
    assert judge(c, "r is at positions 3.").correct is False  # cut off mid-work
    assert judge(c, "The letter r appears 3 times.").correct is True
    a = T.add_problem(12345678901234567, 1, "What is 12345678901234567 + 1?")
    assert judge(a, "Answer: 12345678901234569").correct is False  # exact, not float
    assert judge(a, "12345678901234568").correct is True  # a bare number is an answer
    assert recognise(world, "When was he born?") is None  # a pronoun is nobody's name


def test_pass_at_k_matches_a_brute_force_count():
    for n, c, k in ((16, 0, 8), (16, 1, 8), (16, 5, 8), (16, 16, 1), (10, 3, 1), (8, 2, 4)):
        samples = [True] * c + [False] * (n - c)
        subsets = list(combinations(range(n), k))
        brute = sum(any(samples[i] for i in s) for s in subsets) / len(subsets)
        assert E.pass_at_k(n, c, k) == pytest.approx(brute)


def test_claim_titles_follow_the_numbers():
    def rl_title(rl, labelers, control):
        m = {"arith_pass1_rl": rl, "arith_labelers": labelers, "arith_pass1_sft": 0.1,
             "arith_pass1_sft_control": control}
        claim = next(c for c in E.claims(m, []) if c["id"] == "rl_beyond_labelers")
        return claim["title"], claim["holds"]

    assert rl_title(0.7, 0.6, 0.3) == ("RL with a verifier beat its labelers", True)
    assert rl_title(0.45, 0.59, 0.32) == ("RL beat more imitation, but not its labelers", False)
    assert rl_title(0.2, 0.59, 0.32) == ("RL did not beat its labelers", False)
    short = next(c for c in E.claims({"arith_pass1_rl": 0.181, "arith_labelers": 0.557,
                                      "arith_pass1_sft": 0.085}, [])
                 if c["id"] == "rl_beyond_labelers")["reading"]
    assert "(+9.6 points)" in short and "(37.6 points short of them)" in short
    know = {c["id"]: c for c in E.claims({"knowledge_heldout_sft": 0.2}, [])}["knowledge"]
    assert know["holds"] is False and "does not" in know["title"]
    same = {c["id"]: c for c in E.claims({"work_first_sft": 0.0, "answer_first_sft": 0.0},
                                         [])}["tokens_to_think"]
    assert same["holds"] is False  # equal is not better


def test_a_reply_cut_off_before_its_answer_is_no_way_of_answering():
    """The ways-of-answering shares must not count a truncated or empty reply as answering
    first: it states no answer at all."""
    from engine.data.judge import answer_way

    assert answer_way("Ones: 5 + 7 = 12, carry 1.\nTens: 2 + 3 + 1 =") == "no_answer"
    assert answer_way("") == answer_way(None) == "no_answer"
    assert answer_way("Answer: 12") == "answer_first"
    assert answer_way("Ones: 5 + 7 = 12.\nAnswer: 12") == "work_first"
