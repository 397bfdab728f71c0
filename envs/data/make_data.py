"""Write the small task files in this folder. Deterministic: run it again and the files come out the same.

    python envs/data/make_data.py            # rewrite the .jsonl files next to this script
    python envs/data/make_data.py --check    # exit 1 if a file differs from what this script writes

Every task here was written for agentforge (templates, facts and questions in this file); nothing is
copied from another dataset. See README.md in this folder.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent

# ---------------------------------------------------------------- arithmetic word problems

Problem = tuple[str, int]


def _shopping(r: random.Random) -> Problem:
    n, p = r.randint(2, 12), r.randint(2, 25)
    name, item = r.choice(["Maya", "Omar", "Lena", "Kofi"]), r.choice(["notebooks", "pens", "mugs", "tickets"])
    return f"{name} buys {n} {item} that cost ${p} each. How many dollars does {name} spend?", n * p


def _travel(r: random.Random) -> Problem:
    s, h = r.choice([40, 45, 50, 60, 72, 80, 90]), r.randint(2, 9)
    return f"A train travels at {s} km per hour for {h} hours. How many kilometres does it travel?", s * h


def _left_over(r: random.Random) -> Problem:
    a = r.randint(30, 400)
    b = r.randint(5, a - 1)
    return f"A baker made {a} cookies and sold {b} of them. How many cookies are left?", a - b


def _share(r: random.Random) -> Problem:
    n, k = r.randint(2, 12), r.randint(3, 30)
    return f"{n} friends share {n * k} marbles equally. How many marbles does each friend get?", k


def _bags(r: random.Random) -> Problem:
    a, b, c = r.randint(1, 20), r.randint(2, 9), r.randint(3, 12)
    return (f"Tom has {a} apples. He buys {b} bags with {c} apples in each bag. "
            f"How many apples does he have now?", a + b * c)


def _area(r: random.Random) -> Problem:
    w, length = r.randint(2, 30), r.randint(2, 40)
    return (f"A rectangle is {w} cm wide and {length} cm long. "
            f"What is its area in square centimetres?", w * length)


def _perimeter(r: random.Random) -> Problem:
    w, length = r.randint(2, 50), r.randint(2, 60)
    return (f"A garden is a rectangle {w} m wide and {length} m long. "
            f"How many metres of fence go around it?", 2 * (w + length))


def _ages(r: random.Random) -> Problem:
    a, k, y = r.randint(3, 12), r.randint(3, 5), r.randint(2, 15)
    return (f"Sara is {a} years old. Her grandfather is {k} times as old as she is. "
            f"How old will her grandfather be in {y} years?", a * k + y)


def _legs(r: random.Random) -> Problem:
    c, g = r.randint(1, 30), r.randint(1, 20)
    return f"A farm has {c} chickens and {g} goats. How many legs do these animals have in total?", 2 * c + 4 * g


def _stock(r: random.Random) -> Problem:
    a = r.randint(50, 300)
    b, c = r.randint(1, a - 1), r.randint(5, 120)
    return (f"A shop had {a} shirts. It sold {b} on Monday and received a delivery of {c} on Tuesday. "
            f"How many shirts does it have now?", a - b + c)


def _present(r: random.Random) -> Problem:
    rooms, size = r.randint(3, 20), r.randint(18, 32)
    absent = r.randint(1, 15)
    return (f"A school has {rooms} classrooms with {size} students in each. {absent} students are absent today. "
            f"How many students are present?", rooms * size - absent)


def _savings(r: random.Random) -> Problem:
    w, n = r.randint(5, 40), r.randint(4, 20)
    spent = r.randint(1, w * n - 1)
    return (f"Ali saves ${w} every week for {n} weeks, then spends ${spent} on a gift. "
            f"How many dollars does he have left?", w * n - spent)


def _discount(r: random.Random) -> Problem:
    price, off = 20 * r.randint(1, 15), r.choice([10, 20, 25, 50])
    return (f"A jacket costs ${price}. It is on sale for {off}% off. What is the sale price in dollars?",
            price * (100 - off) // 100)


def _temperature(r: random.Random) -> Problem:
    t, d = r.randint(-5, 15), r.randint(3, 25)
    return (f"The temperature was {t} degrees in the morning and fell by {d} degrees by midnight. "
            f"What was the temperature at midnight?", t - d)


def _vans(r: random.Random) -> Problem:
    cap = r.choice([6, 7, 8, 9, 12, 15])
    n = r.randint(cap + 1, 12 * cap)
    return (f"{n} students are going on a trip in vans that carry {cap} students each. "
            f"How many vans are needed?", math.ceil(n / cap))


def _large(r: random.Random) -> Problem:
    seats, shows = r.randint(120, 980), r.randint(3, 14)
    return (f"A theatre has {seats} seats and every seat was sold for each of {shows} shows. "
            f"How many tickets were sold?", seats * shows)


TEMPLATES: dict[str, Callable[[random.Random], Problem]] = {
    f.__name__.lstrip("_"): f
    for f in (_shopping, _travel, _left_over, _share, _bags, _area, _perimeter, _ages, _legs, _stock, _present,
              _savings, _discount, _temperature, _vans, _large)
}


def arithmetic(n: int = 200, seed: int = 0) -> list[dict[str, object]]:
    r = random.Random(seed)
    rows: list[dict[str, object]] = []
    seen: set[str] = set()
    names = list(TEMPLATES)
    while len(rows) < n:
        name = names[len(rows) % len(names)]
        question, answer = TEMPLATES[name](r)
        if question in seen:
            continue
        seen.add(question)
        rows.append({"id": f"arith-{len(rows):03d}", "question": question, "answer": answer, "template": name})
    return rows


# ---------------------------------------------------------------- capitals

# (country, capital, other accepted spellings). Countries whose capital is disputed, split between
# cities, or named like the country are left out.
CAPITALS: list[tuple[str, str, tuple[str, ...]]] = [
    ("France", "Paris", ()), ("Germany", "Berlin", ()), ("Italy", "Rome", ()), ("Spain", "Madrid", ()),
    ("Portugal", "Lisbon", ()), ("the United Kingdom", "London", ()), ("Ireland", "Dublin", ()),
    ("Belgium", "Brussels", ()), ("Switzerland", "Bern", ("Berne",)),
    ("Austria", "Vienna", ()), ("Poland", "Warsaw", ()), ("the Czech Republic", "Prague", ()),
    ("Slovakia", "Bratislava", ()), ("Hungary", "Budapest", ()), ("Romania", "Bucharest", ()),
    ("Bulgaria", "Sofia", ()), ("Greece", "Athens", ()), ("Turkey", "Ankara", ()), ("Russia", "Moscow", ()),
    ("Ukraine", "Kyiv", ("Kiev",)), ("Belarus", "Minsk", ()), ("Lithuania", "Vilnius", ()),
    ("Latvia", "Riga", ()), ("Estonia", "Tallinn", ()), ("Finland", "Helsinki", ()),
    ("Sweden", "Stockholm", ()), ("Norway", "Oslo", ()), ("Denmark", "Copenhagen", ()),
    ("Iceland", "Reykjavik", ("Reykjavík",)), ("Croatia", "Zagreb", ()), ("Serbia", "Belgrade", ()),
    ("Slovenia", "Ljubljana", ()), ("Albania", "Tirana", ()), ("North Macedonia", "Skopje", ()),
    ("Bosnia and Herzegovina", "Sarajevo", ()), ("Montenegro", "Podgorica", ()),
    ("Moldova", "Chisinau", ("Chișinău",)), ("Malta", "Valletta", ()), ("Cyprus", "Nicosia", ()),
    ("the United States", "Washington, D.C.", ("Washington DC", "Washington")), ("Canada", "Ottawa", ()),
    ("Mexico", "Mexico City", ()), ("Cuba", "Havana", ()), ("Jamaica", "Kingston", ()),
    ("Guatemala", "Guatemala City", ()), ("Honduras", "Tegucigalpa", ()), ("Nicaragua", "Managua", ()),
    ("Costa Rica", "San José", ("San Jose",)), ("Panama", "Panama City", ()),
    ("Colombia", "Bogotá", ("Bogota",)), ("Venezuela", "Caracas", ()), ("Ecuador", "Quito", ()),
    ("Peru", "Lima", ()), ("Chile", "Santiago", ()), ("Argentina", "Buenos Aires", ()),
    ("Uruguay", "Montevideo", ()), ("Paraguay", "Asunción", ("Asuncion",)),
    ("Brazil", "Brasília", ("Brasilia",)), ("Egypt", "Cairo", ()), ("Morocco", "Rabat", ()),
    ("Algeria", "Algiers", ()), ("Tunisia", "Tunis", ()), ("Libya", "Tripoli", ()), ("Sudan", "Khartoum", ()),
    ("Ethiopia", "Addis Ababa", ()), ("Kenya", "Nairobi", ()), ("Uganda", "Kampala", ()),
    ("Rwanda", "Kigali", ()), ("Ghana", "Accra", ()), ("Senegal", "Dakar", ()), ("Mali", "Bamako", ()),
    ("Nigeria", "Abuja", ()), ("Angola", "Luanda", ()), ("Zambia", "Lusaka", ()), ("Zimbabwe", "Harare", ()),
    ("Mozambique", "Maputo", ()), ("Madagascar", "Antananarivo", ()), ("Namibia", "Windhoek", ()),
    ("Botswana", "Gaborone", ()), ("China", "Beijing", ()), ("Japan", "Tokyo", ()),
    ("South Korea", "Seoul", ()), ("North Korea", "Pyongyang", ()),
    ("Mongolia", "Ulaanbaatar", ("Ulan Bator",)), ("India", "New Delhi", ()), ("Pakistan", "Islamabad", ()),
    ("Bangladesh", "Dhaka", ()), ("Nepal", "Kathmandu", ()), ("Afghanistan", "Kabul", ()),
    ("Iran", "Tehran", ()), ("Iraq", "Baghdad", ()), ("Saudi Arabia", "Riyadh", ()), ("Jordan", "Amman", ()),
    ("Syria", "Damascus", ()), ("Lebanon", "Beirut", ()), ("Thailand", "Bangkok", ()),
    ("Vietnam", "Hanoi", ()), ("the Philippines", "Manila", ()), ("Australia", "Canberra", ()),
    ("New Zealand", "Wellington", ()),
]


def capitals() -> list[dict[str, object]]:
    rows = []
    for country, capital, aliases in CAPITALS:
        slug = country.removeprefix("the ").lower().replace(" ", "-")
        rows.append({"id": f"capital-{slug}", "question": f"What is the capital of {country}?",
                     "answer": [capital, *aliases], "country": country.removeprefix("the ")})
    return rows


# ---------------------------------------------------------------- multiple-choice science and general questions

# (topic, question, correct option, three wrong options)
MCQ: list[tuple[str, str, str, tuple[str, str, str]]] = [
    ("biology", "Which gas do plants take from the air for photosynthesis?", "Carbon dioxide",
     ("Oxygen", "Nitrogen", "Helium")),
    ("chemistry", "What is the chemical symbol for gold?", "Au", ("Ag", "Gd", "Go")),
    ("astronomy", "How many planets are in the Solar System?", "8", ("7", "9", "10")),
    ("astronomy", "Which planet is closest to the Sun?", "Mercury", ("Venus", "Earth", "Mars")),
    ("physics", "At sea level, at what temperature in degrees Celsius does pure water boil?", "100",
     ("90", "80", "212")),
    ("biology", "Which organ pumps blood around the human body?", "The heart",
     ("The liver", "The lungs", "The kidneys")),
    ("chemistry", "Which substance has the chemical formula H2O?", "Water",
     ("Hydrogen peroxide", "Salt", "Ammonia")),
    ("astronomy", "Which is the largest planet in the Solar System?", "Jupiter", ("Saturn", "Neptune", "Earth")),
    ("biology", "Which blood cells carry oxygen?", "Red blood cells",
     ("White blood cells", "Platelets", "Nerve cells")),
    ("biology", "Which part of a cell releases most of its energy from food?", "Mitochondria",
     ("Nucleus", "Cell wall", "Ribosome")),
    ("geology", "Which is the hardest natural substance?", "Diamond", ("Gold", "Iron", "Quartz")),
    ("physics", "Which force keeps the planets in orbit around the Sun?", "Gravity",
     ("Magnetism", "Friction", "Air resistance")),
    ("physics", "At what temperature in degrees Fahrenheit does pure water freeze?", "32", ("0", "100", "-32")),
    ("biology", "Which of these animals is a mammal?", "Dolphin", ("Shark", "Trout", "Octopus")),
    ("biology", "Which vitamin does human skin make in sunlight?", "Vitamin D",
     ("Vitamin A", "Vitamin C", "Vitamin K")),
    ("chemistry", "What is the pH of pure water at 25 degrees Celsius?", "7", ("0", "5", "14")),
    ("chemistry", "Which of these is a noble gas?", "Neon", ("Oxygen", "Nitrogen", "Chlorine")),
    ("physics", "Which particle has a negative electric charge?", "Electron", ("Proton", "Neutron", "Photon")),
    ("physics", "What is the unit of electrical resistance?", "Ohm", ("Volt", "Ampere", "Watt")),
    ("physics", "What is the SI unit of force?", "Newton", ("Joule", "Pascal", "Kelvin")),
    ("astronomy", "Which star is closest to Earth?", "The Sun", ("Sirius", "Polaris", "Betelgeuse")),
    ("astronomy", "Which planet is called the Red Planet?", "Mars", ("Jupiter", "Mercury", "Uranus")),
    ("biology", "How many bones are in the body of a typical adult human?", "206", ("106", "186", "306")),
    ("biology", "What is the largest organ of the human body?", "Skin", ("Liver", "Brain", "Stomach")),
    ("earth science", "Which gas makes up most of Earth's atmosphere?", "Nitrogen",
     ("Oxygen", "Carbon dioxide", "Argon")),
    ("geology", "Which type of rock forms when lava cools and hardens?", "Igneous rock",
     ("Sedimentary rock", "Metamorphic rock", "Limestone")),
    ("earth science", "What is water vapour turning into liquid water called?", "Condensation",
     ("Evaporation", "Melting", "Sublimation")),
    ("chemistry", "Which metal is liquid at room temperature?", "Mercury", ("Iron", "Aluminium", "Copper")),
    ("chemistry", "What is the chemical formula of table salt?", "NaCl", ("KCl", "NaOH", "CaCO3")),
    ("biology", "How many chromosomes does a typical human body cell have?", "46", ("23", "44", "48")),
    ("biology", "In which part of a plant does most photosynthesis happen?", "The leaves",
     ("The roots", "The flowers", "The seeds")),
    ("physics", "Which of these is a renewable source of energy?", "Wind", ("Coal", "Oil", "Natural gas")),
    ("physics", "Which instrument measures air pressure?", "Barometer",
     ("Thermometer", "Hygrometer", "Anemometer")),
    ("physics", "Which simple machine is a ramp?", "Inclined plane", ("Lever", "Pulley", "Wheel and axle")),
    ("chemistry", "What is the centre of an atom called?", "Nucleus", ("Electron shell", "Orbit", "Molecule")),
    ("astronomy", "Which planet has the largest and brightest rings?", "Saturn", ("Mars", "Venus", "Mercury")),
    ("biology", "What are animals that eat only plants called?", "Herbivores",
     ("Carnivores", "Omnivores", "Decomposers")),
    ("chemistry", "Which element has atomic number 1?", "Hydrogen", ("Helium", "Carbon", "Oxygen")),
    ("astronomy", "About how long does Earth take to orbit the Sun once?", "365 days",
     ("24 hours", "30 days", "100 days")),
    ("biology", "Which gas do plants give off during photosynthesis?", "Oxygen",
     ("Carbon dioxide", "Methane", "Hydrogen")),
    ("physics", "Which of these materials conducts electricity best?", "Copper", ("Rubber", "Glass", "Wood")),
    ("biology", "In which organ are most nutrients from food absorbed?", "The small intestine",
     ("The stomach", "The large intestine", "The gall bladder")),
    ("mathematics", "What is the smallest prime number?", "2", ("1", "3", "0")),
    ("mathematics", "What is the square root of 81?", "9", ("8", "7", "18")),
    ("mathematics", "How many sides does a hexagon have?", "6", ("5", "7", "8")),
    ("mathematics", "How many degrees are in a right angle?", "90", ("45", "180", "360")),
    ("geography", "Which is the largest ocean on Earth?", "The Pacific Ocean",
     ("The Atlantic Ocean", "The Indian Ocean", "The Arctic Ocean")),
    ("geography", "On which continent is the Sahara Desert?", "Africa", ("Asia", "Australia", "South America")),
    ("geography", "Which mountain has the highest peak above sea level?", "Mount Everest",
     ("K2", "Kilimanjaro", "Mont Blanc")),
    ("biology", "Which is the longest bone in the human body?", "Femur", ("Tibia", "Humerus", "Spine")),
    ("physics", "What kind of energy does a moving object have because of its motion?", "Kinetic energy",
     ("Potential energy", "Chemical energy", "Nuclear energy")),
    ("earth science", "What mainly causes the ocean tides on Earth?", "The Moon's gravity",
     ("The wind", "Earth's magnetic field", "Underwater volcanoes")),
    ("physics", "Which colour of visible light has the longest wavelength?", "Red", ("Blue", "Green", "Violet")),
    ("chemistry", "What is the chemical symbol for iron?", "Fe", ("Ir", "In", "I")),
    ("biology", "How many legs does an insect have?", "6", ("4", "8", "10")),
    ("biology", "What does a caterpillar become as an adult?", "A butterfly or moth",
     ("A beetle", "A spider", "A bee")),
    ("physics", "Through which of these does sound travel fastest?", "Steel", ("Air", "Water", "A vacuum")),
    ("biology", "Which organs do fish use to breathe?", "Gills", ("Lungs", "Fins", "Scales")),
    ("history of science", "Who proposed the general theory of relativity?", "Albert Einstein",
     ("Isaac Newton", "Marie Curie", "Charles Darwin")),
    ("history of science", "Who described the three laws of motion and universal gravitation?", "Isaac Newton",
     ("Galileo Galilei", "Nikola Tesla", "Albert Einstein")),
]


def mcq_science(seed: int = 0) -> list[dict[str, object]]:
    r = random.Random(seed)
    rows = []
    for i, (topic, question, right, wrong) in enumerate(MCQ):
        options = [right, *wrong]
        r.shuffle(options)
        rows.append({"id": f"mcq-{i:02d}", "question": question, "options": options, "answer": right,
                     "topic": topic})
    return rows


# ---------------------------------------------------------------- code: small functions with asserts

# (name, signature, description, reference solution body, tests)
CODE: list[tuple[str, str, str, str, list[str]]] = [
    ("add", "add(a, b)", "returns the sum of a and b", "return a + b",
     ["assert add(2, 3) == 5", "assert add(-4, 4) == 0", "assert add(10, -15) == -5"]),
    ("is_even", "is_even(n)", "returns True if the integer n is even, else False", "return n % 2 == 0",
     ["assert is_even(4) is True", "assert is_even(7) is False", "assert is_even(0) is True",
      "assert is_even(-3) is False"]),
    ("reverse_string", "reverse_string(s)", "returns the string s reversed", "return s[::-1]",
     ["assert reverse_string('abc') == 'cba'", "assert reverse_string('') == ''",
      "assert reverse_string('racecar') == 'racecar'"]),
    ("factorial", "factorial(n)", "returns n! for an integer n >= 0",
     "result = 1\n    for k in range(2, n + 1):\n        result *= k\n    return result",
     ["assert factorial(0) == 1", "assert factorial(5) == 120", "assert factorial(10) == 3628800"]),
    ("fibonacci", "fibonacci(n)", "returns the n-th Fibonacci number, with fibonacci(0) == 0 and fibonacci(1) == 1",
     "a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a",
     ["assert fibonacci(0) == 0", "assert fibonacci(1) == 1", "assert fibonacci(10) == 55",
      "assert fibonacci(20) == 6765"]),
    ("is_palindrome", "is_palindrome(s)",
     "returns True if s reads the same backwards, ignoring case and every character that is not a letter or digit",
     "t = [c.lower() for c in s if c.isalnum()]\n    return t == t[::-1]",
     ["assert is_palindrome('A man, a plan, a canal: Panama') is True", "assert is_palindrome('hello') is False",
      "assert is_palindrome('') is True"]),
    ("count_vowels", "count_vowels(s)", "returns how many vowels (a, e, i, o, u, either case) are in s",
     "return sum(1 for c in s.lower() if c in 'aeiou')",
     ["assert count_vowels('hello') == 2", "assert count_vowels('SKY') == 0", "assert count_vowels('AEiou') == 5"]),
    ("largest", "largest(numbers)", "returns the largest number in a non-empty list", "return max(numbers)",
     ["assert largest([3, 9, 2]) == 9", "assert largest([-5, -2, -9]) == -2", "assert largest([7]) == 7"]),
    ("sum_digits", "sum_digits(n)", "returns the sum of the decimal digits of the integer n (ignore its sign)",
     "return sum(int(d) for d in str(abs(n)))",
     ["assert sum_digits(123) == 6", "assert sum_digits(0) == 0", "assert sum_digits(-409) == 13"]),
    ("gcd", "gcd(a, b)", "returns the greatest common divisor of two positive integers",
     "while b:\n        a, b = b, a % b\n    return a",
     ["assert gcd(12, 18) == 6", "assert gcd(7, 13) == 1", "assert gcd(100, 75) == 25"]),
    ("lcm", "lcm(a, b)", "returns the least common multiple of two positive integers",
     "import math\n    return a * b // math.gcd(a, b)",
     ["assert lcm(4, 6) == 12", "assert lcm(5, 7) == 35", "assert lcm(12, 12) == 12"]),
    ("is_prime", "is_prime(n)", "returns True if the integer n is a prime number, else False",
     "if n < 2:\n        return False\n    k = 2\n    while k * k <= n:\n        if n % k == 0:\n"
     "            return False\n        k += 1\n    return True",
     ["assert is_prime(2) is True", "assert is_prime(1) is False", "assert is_prime(97) is True",
      "assert is_prime(91) is False"]),
    ("celsius_to_fahrenheit", "celsius_to_fahrenheit(c)", "converts degrees Celsius to degrees Fahrenheit",
     "return c * 9 / 5 + 32",
     ["assert celsius_to_fahrenheit(0) == 32", "assert celsius_to_fahrenheit(100) == 212",
      "assert celsius_to_fahrenheit(-40) == -40"]),
    ("flatten", "flatten(lists)", "flattens a list of lists by one level, keeping the order",
     "return [x for inner in lists for x in inner]",
     ["assert flatten([[1, 2], [3], []]) == [1, 2, 3]", "assert flatten([]) == []",
      "assert flatten([[[1]], [2]]) == [[1], 2]"]),
    ("unique_sorted", "unique_sorted(items)", "returns the distinct items of a list in ascending order",
     "return sorted(set(items))",
     ["assert unique_sorted([3, 1, 3, 2]) == [1, 2, 3]", "assert unique_sorted([]) == []",
      "assert unique_sorted(['b', 'a', 'b']) == ['a', 'b']"]),
    ("dedupe", "dedupe(items)", "returns the items of a list without repeats, keeping the first occurrence order",
     "seen = set()\n    out = []\n    for x in items:\n        if x not in seen:\n            seen.add(x)\n"
     "            out.append(x)\n    return out",
     ["assert dedupe([3, 1, 3, 2, 1]) == [3, 1, 2]", "assert dedupe([]) == []",
      "assert dedupe(['a', 'a']) == ['a']"]),
    ("second_largest", "second_largest(numbers)",
     "returns the second largest distinct value in a list that has at least two distinct values",
     "return sorted(set(numbers))[-2]",
     ["assert second_largest([1, 5, 3]) == 3", "assert second_largest([4, 4, 2]) == 2",
      "assert second_largest([-1, -7]) == -7"]),
    ("binary_to_int", "binary_to_int(bits)", "converts a string of 0s and 1s to the integer it represents in base 2",
     "return int(bits, 2)",
     ["assert binary_to_int('0') == 0", "assert binary_to_int('101') == 5", "assert binary_to_int('11111111') == 255"]),
    ("int_to_binary", "int_to_binary(n)", "returns the base-2 digits of a non-negative integer as a string, "
     "with no prefix", "return bin(n)[2:]",
     ["assert int_to_binary(0) == '0'", "assert int_to_binary(5) == '101'",
      "assert int_to_binary(256) == '100000000'"]),
    ("is_anagram", "is_anagram(a, b)", "returns True if the strings a and b use the same letters the same number "
     "of times, ignoring case and spaces",
     "return sorted(a.replace(' ', '').lower()) == sorted(b.replace(' ', '').lower())",
     ["assert is_anagram('listen', 'silent') is True", "assert is_anagram('Dormitory', 'dirty room') is True",
      "assert is_anagram('abc', 'abd') is False"]),
    ("char_counts", "char_counts(s)", "returns a dict mapping each character of s to how many times it occurs",
     "counts = {}\n    for c in s:\n        counts[c] = counts.get(c, 0) + 1\n    return counts",
     ["assert char_counts('aab') == {'a': 2, 'b': 1}", "assert char_counts('') == {}",
      "assert char_counts('xyz') == {'x': 1, 'y': 1, 'z': 1}"]),
    ("merge_sorted", "merge_sorted(a, b)", "merges two ascending lists into one ascending list",
     "return sorted(a + b)",
     ["assert merge_sorted([1, 4], [2, 3]) == [1, 2, 3, 4]", "assert merge_sorted([], [1]) == [1]",
      "assert merge_sorted([1, 1], [1]) == [1, 1, 1]"]),
    ("chunks", "chunks(items, size)", "splits a list into consecutive lists of length size (the last may be shorter)",
     "return [items[i:i + size] for i in range(0, len(items), size)]",
     ["assert chunks([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]", "assert chunks([], 3) == []",
      "assert chunks([1, 2], 5) == [[1, 2]]"]),
    ("rotate", "rotate(items, k)", "rotates a list to the right by k places (k may exceed its length)",
     "if not items:\n        return []\n    k %= len(items)\n    return items[-k:] + items[:-k] if k else list(items)",
     ["assert rotate([1, 2, 3, 4], 1) == [4, 1, 2, 3]", "assert rotate([1, 2, 3], 3) == [1, 2, 3]",
      "assert rotate([1, 2, 3], 5) == [2, 3, 1]", "assert rotate([], 2) == []"]),
    ("running_sum", "running_sum(numbers)", "returns the list of cumulative sums of a list of numbers",
     "out, total = [], 0\n    for x in numbers:\n        total += x\n        out.append(total)\n    return out",
     ["assert running_sum([1, 2, 3]) == [1, 3, 6]", "assert running_sum([]) == []",
      "assert running_sum([5, -5, 5]) == [5, 0, 5]"]),
    ("word_count", "word_count(text)", "returns the number of words in text, where words are separated by whitespace",
     "return len(text.split())",
     ["assert word_count('hello world') == 2", "assert word_count('   ') == 0",
      "assert word_count('one  two\\tthree\\nfour') == 4"]),
    ("longest_word", "longest_word(text)", "returns the longest whitespace-separated word in text; the first one "
     "if several are equally long", "return max(text.split(), key=len)",
     ["assert longest_word('a bb ccc dd') == 'ccc'", "assert longest_word('cat dog') == 'cat'",
      "assert longest_word('elephant') == 'elephant'"]),
    ("caesar", "caesar(text, shift)", "shifts each lowercase letter of text forward by shift places in the "
     "alphabet, wrapping from z to a; other characters stay as they are",
     "return ''.join(chr((ord(c) - 97 + shift) % 26 + 97) if 'a' <= c <= 'z' else c for c in text)",
     ["assert caesar('abc', 1) == 'bcd'", "assert caesar('xyz', 3) == 'abc'", "assert caesar('hi there!', 0) == "
      "'hi there!'", "assert caesar('a-b', 27) == 'b-c'"]),
    ("is_leap_year", "is_leap_year(year)", "returns True if year is a leap year in the Gregorian calendar",
     "return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)",
     ["assert is_leap_year(2024) is True", "assert is_leap_year(1900) is False", "assert is_leap_year(2000) is True",
      "assert is_leap_year(2023) is False"]),
    ("reverse_digits", "reverse_digits(n)", "returns the non-negative integer n with its decimal digits reversed",
     "return int(str(n)[::-1])",
     ["assert reverse_digits(123) == 321", "assert reverse_digits(1200) == 21", "assert reverse_digits(7) == 7"]),
    ("transpose", "transpose(matrix)", "returns the transpose of a rectangular matrix given as a list of rows",
     "return [list(row) for row in zip(*matrix)]",
     ["assert transpose([[1, 2, 3], [4, 5, 6]]) == [[1, 4], [2, 5], [3, 6]]", "assert transpose([[1]]) == [[1]]",
      "assert transpose([[1, 2]]) == [[1], [2]]"]),
    ("dot", "dot(u, v)", "returns the dot product of two lists of numbers of the same length",
     "return sum(x * y for x, y in zip(u, v))",
     ["assert dot([1, 2, 3], [4, 5, 6]) == 32", "assert dot([], []) == 0", "assert dot([-1, 1], [1, 1]) == 0"]),
    ("median", "median(numbers)", "returns the median of a non-empty list of numbers (the mean of the two middle "
     "values when the length is even)",
     "s = sorted(numbers)\n    mid = len(s) // 2\n    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2",
     ["assert median([3, 1, 2]) == 2", "assert median([4, 1, 3, 2]) == 2.5", "assert median([5]) == 5"]),
    ("clamp", "clamp(x, low, high)", "returns x limited to the range from low to high",
     "return max(low, min(high, x))",
     ["assert clamp(5, 0, 10) == 5", "assert clamp(-3, 0, 10) == 0", "assert clamp(42, 0, 10) == 10"]),
    ("fizzbuzz", "fizzbuzz(n)", "returns 'FizzBuzz' if n is divisible by 15, 'Fizz' if by 3, 'Buzz' if by 5, "
     "else str(n)",
     "if n % 15 == 0:\n        return 'FizzBuzz'\n    if n % 3 == 0:\n        return 'Fizz'\n    if n % 5 == 0:\n"
     "        return 'Buzz'\n    return str(n)",
     ["assert fizzbuzz(9) == 'Fizz'", "assert fizzbuzz(10) == 'Buzz'", "assert fizzbuzz(30) == 'FizzBuzz'",
      "assert fizzbuzz(7) == '7'"]),
    ("title_case", "title_case(text)", "capitalises the first letter of each space-separated word and lowercases "
     "the rest", "return ' '.join(w[:1].upper() + w[1:].lower() for w in text.split(' '))",
     ["assert title_case('hello world') == 'Hello World'", "assert title_case('pYTHON') == 'Python'",
      "assert title_case('') == ''"]),
    ("count_words", "count_words(text)", "returns a dict mapping each lowercased whitespace-separated word to how "
     "many times it occurs",
     "counts = {}\n    for w in text.lower().split():\n        counts[w] = counts.get(w, 0) + 1\n    return counts",
     ["assert count_words('a A b') == {'a': 2, 'b': 1}", "assert count_words('') == {}",
      "assert count_words('x y x') == {'x': 2, 'y': 1}"]),
    ("mean", "mean(numbers)", "returns the arithmetic mean of a non-empty list of numbers",
     "return sum(numbers) / len(numbers)",
     ["assert mean([1, 2, 3]) == 2", "assert mean([5]) == 5", "assert mean([1, 2]) == 1.5"]),
    ("evens", "evens(numbers)", "returns the even numbers of a list, in order",
     "return [x for x in numbers if x % 2 == 0]",
     ["assert evens([1, 2, 3, 4]) == [2, 4]", "assert evens([]) == []", "assert evens([-2, -1, 0]) == [-2, 0]"]),
    ("power_set_size", "power_set_size(n)", "returns how many subsets a set of n elements has", "return 2 ** n",
     ["assert power_set_size(0) == 1", "assert power_set_size(3) == 8", "assert power_set_size(10) == 1024"]),
]


def code_funcs() -> list[dict[str, object]]:
    rows = []
    for name, signature, description, body, tests in CODE:
        question = (f"Write a Python function `{signature}` that {description}. "
                    f"For example, this must hold: `{tests[0].removeprefix('assert ')}`.")
        solution = f"def {signature}:\n    {body}\n"
        rows.append({"id": f"code-{name}", "question": question, "answer": solution, "tests": tests,
                     "entry_point": name})
    return rows


# ---------------------------------------------------------------- writing

FILES: dict[str, Callable[[], list[dict[str, object]]]] = {
    "arithmetic.jsonl": arithmetic,
    "capitals.jsonl": capitals,
    "mcq_science.jsonl": mcq_science,
    "code_funcs.jsonl": code_funcs,
}


def render(rows: list[dict[str, object]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write to")
    args = parser.parse_args(argv)
    stale = []
    for name, make in FILES.items():
        text = render(make())
        path = args.out / name
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        sys.stderr.write(f"out of date: {', '.join(stale)} (run envs/data/make_data.py)\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
