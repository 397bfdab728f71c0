"""Wordle: guess a secret five-letter word in six tries from per-letter feedback.

Each guess is marked letter by letter, as in the real game: ``G`` right letter in the right spot,
``Y`` in the word but elsewhere, ``-`` not in the word (or no more copies of it: a letter guessed
twice is marked yellow only as often as the secret still has unmatched copies). Guesses must be
words of the game's dictionary (:data:`WORDS`, common English words). Solving scores 1; six wrong
guesses score 0 (``info["partial"]`` is the best guess's share of green letters).

Example::

    obs:    Guess the secret 5-letter word. You have 6 guesses. ...
    action: guess crane
    obs:    Guess 1/6: CRANE -> - Y G - -
            C: not in the word; R: in the word, wrong spot; A: correct; N: not in the word; ...
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence

from agentforge.envs.base import Environment, LocalSession, Observation, StepResult, Task, assign_splits
from agentforge.errors import EnvError

GUESSES = 6
LENGTH = 5

_WORD_TEXT = """
about above abuse actor acute admit adopt adult after again agent agree ahead alarm album alert alike alive allow
alone along alter among anger angle angry apart apple apply arena argue arise array aside asset audio audit avoid
award aware awful bacon badge badly baker basic basin basis beach beard beast begin being below bench berry birth
black blade blame blank blast blend bless blind block blood bloom board boast bonus boost booth bound brain brand
brave bread break breed brick bride brief bring broad brook brown brush build built bunch burst buyer cabin cable
camel canal candy canoe cargo carry catch cause cedar chain chair chalk charm chart chase cheap check cheek cheer
chess chest chief child chill choir chord civic civil claim clash class clean clear clerk click cliff climb clock
close cloth cloud coach coast color coral couch could count court cover crack craft crane crash crazy cream crime
crisp cross crowd crown crude crust curve cycle daily dairy dance dealt death debut decay delay delta dense depth
diary dirty ditch dizzy dodge doubt dough dozen draft drain drama drank drawn dream dress dried drift drill drink
drive drove dryer dusty dwarf eager eagle early earth eaten eight elbow elder elect elite empty enemy enjoy enter
entry equal error essay event every exact exist extra fable faint fairy faith false fancy fatal fault feast fence
ferry fetch fever fewer fiber field fifth fifty fight final flame flash fleet flesh float flock flood floor flour
fluid flute focus foggy force forge forth forty forum found frame fresh front frost fruit fully funny giant given
glass globe glove goose grace grade grain grand grant grape graph grasp grass grave gravy great greed green greet
grief grill grind groan gross group grove growl grown guard guess guest guide guilt habit happy harsh haste hasty
hatch haunt heart heavy hedge hello hinge hobby honey honor horse hotel house hover human humid humor hurry ideal
image imply index inner input irony issue ivory jelly jewel joint jolly judge juice juicy kayak knife knock known
koala label labor large laser later laugh layer learn lease least leave ledge lemon level lever light limit linen
liver llama lobby local lodge logic loose lover lower loyal lucky lunar lunch magic major maker mango maple march
marsh match mayor medal media melon mercy merit metal meter midst might minor minus mixed model moist money month
moral motor motto mount mouse mouth movie muddy music naive nasty naval nerve never newly niece night noble noise
north notch novel nurse nylon oasis ocean offer often olive onion opera orbit order organ other otter ought ounce
outer owner oxide paint panel panic paper party pasta paste patch pause peace peach pearl pedal penny perch phase
phone photo piano piece pilot pinch pitch pizza place plain plane plant plate plaza plead pluck plump point polar
porch pound power press price pride prime print prior prize probe proof proud prove proxy pulse punch pupil puppy
purse queen query quest queue quick quiet quilt quite quota quote radar radio rainy raise rally ranch range rapid
ratio reach react ready realm rebel refer relax relay repay reply rider ridge rifle right rigid rinse risky rival
river roast robin robot rocky rough round route royal rugby ruler rural rusty sadly saint salad salty sauce scale
scare scarf scene scent scope score scout scrap screw sense serve seven shade shake shall shame shape share shark
sharp sheep sheet shelf shell shift shine shiny shirt shock shore short shout shown sight silly since skill skirt
skull slate sleep slice slide slope small smart smell smile smoke snack snake sneak solar solid solve sorry sound
south space spare spark speak spear speed spend spice spike spill spine spoon sport spray squad stack staff stage
stain stair stake stale stamp stand start state steak steam steel steep steer stern stick stiff still sting stock
stone stool storm story stove straw strip stuck study stuff style sugar suite sunny super surge swamp swear sweat
sweep sweet swift swing sword table taken taste teach teeth tempo tenth thank theft theme there thick thief thigh
thing think third thorn those three threw throw thumb tiger tight timer tired title toast today token tooth topic
torch total touch tough towel tower toxic trace track trade trail train trait trash tread treat trend trial tribe
trick tried troop truck truly trunk trust truth tulip tutor twice twist uncle under union unite unity until upper
upset urban usage usual valid value valve vapor vault venue verse video vigor vinyl virus visit vital vivid vocal
voice voter wagon waist waste watch water weave wedge weigh weird whale wheat wheel where which while whirl white
whole whose widen width windy witch woman world worry worse worst worth would wound wrath wreck wrist write wrong
wrote yacht yeast yield young youth zebra
"""

#: The game's dictionary: every guess must be one of these; every secret is one of these.
WORDS: tuple[str, ...] = tuple(sorted(set(_WORD_TEXT.split())))
_WORD_SET = frozenset(WORDS)

_ACTION = re.compile(r"^(?:action\s*:\s*)?(?:guess\s*:?\s*)?[\"'`]?([A-Za-z]+|(?:[A-Za-z] ){4}[A-Za-z])[\"'`]?[.!]?$",
                     re.IGNORECASE)

_INSTRUCTION = (
    "You are playing Wordle. Find the secret 5-letter English word in at most 6 guesses. "
    "Reply with one guess per turn: a 5-letter word, e.g. `guess crane` (or just `crane`). "
    "After each guess you get one mark per letter: G = right letter in the right spot, "
    "Y = the letter is in the word but in another spot, - = the letter is not in the word "
    "(or not that many times). Use the marks to narrow down the word."
)


def feedback(guess: str, secret: str) -> str:
    """The marks for ``guess`` against ``secret`` (``G``/``Y``/``-``), with real Wordle's repeat rule."""
    marks = ["-"] * LENGTH
    unmatched: dict[str, int] = {}
    for i, (g, s) in enumerate(zip(guess, secret, strict=True)):
        if g == s:
            marks[i] = "G"
        else:
            unmatched[s] = unmatched.get(s, 0) + 1
    for i, g in enumerate(guess):
        if marks[i] == "-" and unmatched.get(g, 0) > 0:
            marks[i] = "Y"
            unmatched[g] -= 1
    return "".join(marks)


def parse_guess(action: str) -> str | None:
    """The guessed word (lower case) in ``action``, or None if it is not a single-word guess.

    LMRL-Gym's spelling, five letters separated by spaces (``c r a n e``), is accepted too.
    """
    match = _ACTION.match(action.strip())
    return match.group(1).replace(" ", "").lower() if match else None


def _describe(guess: str, marks: str) -> str:
    words = {"G": "correct", "Y": "in the word, wrong spot", "-": "not in the word"}
    return "; ".join(f"{g.upper()}: {words[m]}" for g, m in zip(guess, marks, strict=True))


class WordleSession(LocalSession):
    env: WordleEnv

    def _reset(self, task: Task) -> Observation:
        self.secret = str(task.answer)
        self.guesses: list[tuple[str, str]] = []
        return self._observation(
            f"Guess the secret {LENGTH}-letter word. You have {GUESSES} guesses. "
            "Reply with a 5-letter word, e.g. `guess crane`. Marks per letter: G = right letter, right spot; "
            "Y = in the word, wrong spot; - = not in the word."
        )

    def _observation(self, text: str) -> Observation:
        return Observation(text=text, fields={"guesses_left": GUESSES - len(self.guesses)})

    def _step(self, action: str) -> StepResult:
        word = parse_guess(action)
        problem = self._problem(word)
        if problem is not None or word is None:
            left = GUESSES - len(self.guesses)
            return StepResult(observation=self._observation(
                f"Invalid action: {problem} Reply with one 5-letter English word, e.g. `guess crane`. "
                f"This did not use a guess; you have {left} left."), reward=0.0, done=False, info={"invalid": True})
        marks = feedback(word, self.secret)
        self.guesses.append((word, marks))
        n = len(self.guesses)
        line = f"Guess {n}/{GUESSES}: {word.upper()} -> {' '.join(marks)}\n{_describe(word, marks)}."
        if marks == "G" * LENGTH:
            return StepResult(observation=self._observation(f"{line}\nSolved! The word is {word.upper()}."),
                              reward=1.0, done=True, info={"solved": True, "guesses": n, "partial": 1.0})
        if n >= GUESSES:
            partial = max(m.count("G") for _, m in self.guesses) / LENGTH
            return StepResult(observation=self._observation(f"{line}\nOut of guesses. The word was "
                                                            f"{self.secret.upper()}."),
                              reward=0.0, done=True, info={"solved": False, "guesses": n, "partial": partial})
        board = "; ".join(f"{g.upper()} {m}" for g, m in self.guesses)
        return StepResult(observation=self._observation(f"{line}\nBoard so far: {board}. {GUESSES - n} guesses left."),
                          reward=0.0, done=False)

    @staticmethod
    def _problem(word: str | None) -> str | None:
        if word is None:
            return "a guess is a single word of letters."
        if len(word) != LENGTH:
            shown = word if len(word) <= 20 else word[:17] + "..."
            return f"'{shown}' has {len(word)} letters, not {LENGTH}."
        if word not in _WORD_SET:
            return f"'{word}' is not in the game's word list."
        return None


class WordleEnv(Environment):
    """Wordle over :data:`WORDS`; one task per secret word (at most ``len(WORDS)`` tasks)."""

    name = "wordle"
    instruction = _INSTRUCTION
    multi_turn = True
    max_steps = 2 * GUESSES  # six guesses plus slack for invalid replies, which count as steps

    def __init__(self, num_tasks: int = 300, seed: int = 0,
                 splits: Mapping[str, float | int] | None = None) -> None:
        if not 1 <= num_tasks <= len(WORDS):
            raise EnvError(f"wordle: num_tasks must be 1..{len(WORDS)} (one task per word), got {num_tasks}",
                           env=self.name)
        self.seed = seed
        secrets = random.Random(f"wordle:{seed}").sample(WORDS, num_tasks)
        super().__init__(_make_tasks(secrets, splits, seed))

    def session(self) -> WordleSession:
        return WordleSession(self)


def _make_tasks(secrets: Sequence[str], splits: Mapping[str, float | int] | None, seed: int) -> list[Task]:
    ids = [f"wordle-{i:04d}" for i in range(len(secrets))]
    split_of = assign_splits(ids, splits, seed)
    return [Task(id=task_id, split=split_of[task_id], answer=secret, meta={"length": LENGTH, "guesses": GUESSES})
            for task_id, secret in zip(ids, secrets, strict=True)]
