"""Realistic demo users and posts from small word lists: offline, fast, reproducible by seed."""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

FIRST_NAMES = (
    "Ada", "Alan", "Amara", "Ana", "Anika", "Arjun", "Astrid", "Barbara", "Bjarne", "Camille",
    "Carlos", "Chen", "Chiara", "Dennis", "Diego", "Edsger", "Elena", "Emeka", "Emma", "Fatima",
    "Felix", "Frances", "Grace", "Guido", "Hana", "Hedy", "Ines", "Ivan", "Jamal", "Jean",
    "Joan", "José", "Karen", "Katherine", "Kenji", "Leila", "Linus", "Lucía", "Mahmoud", "Margaret",
    "Maria", "Mateo", "Mei", "Nadia", "Niklaus", "Noor", "Olga", "Omar", "Priya", "Radia",
    "Rasmus", "Rosa", "Sofia", "Sophie", "Tariq", "Thandiwe", "Tim", "Valentina", "Wei", "Yuki",
    "Zoë", "Zainab",
)  # fmt: skip
LAST_NAMES = (
    "Abebe", "Adeyemi", "Allen", "Andersen", "Backus", "Bauer", "Berners-Lee", "Borg", "Castro",
    "Cerf", "Chowdhury", "Dijkstra", "Dubois", "Fernández", "Fischer", "Goldberg", "Hamilton",
    "Hopper", "Ivanova", "Jansen", "Johnson", "Kahn", "Kay", "Khan", "Kim", "Knuth", "Kowalski",
    "Lamport", "Liskov", "Lovelace", "Martin", "McCarthy", "Mensah", "Moreau", "Müller", "Nakamura",
    "Nguyen", "Novak", "O'Brien", "Okafor", "Perlman", "Petrov", "Ritchie", "Rossi", "Sammet",
    "Santos", "Sato", "Silva", "Stroustrup", "Tanaka", "Thompson", "Torvalds", "Turing", "van Rossum",
    "Wang", "Wirth", "Wong", "Yilmaz", "Zhang",
)  # fmt: skip
# Reserved for documentation (RFC 2606): demo mail can never reach a real person.
DOMAINS = ("example.com", "example.org", "example.net")
TOPICS = (
    "database indexes", "sourdough bread", "keyset pagination", "night trains", "code review",
    "container gardening", "connection pools", "learning Rust", "city cycling", "type hints",
    "home espresso", "migrations", "bird watching", "remote work", "unit tests", "mechanical keyboards",
    "trail running", "query plans", "open source", "film photography", "on-call rotations",
    "chess openings", "soft deletes", "retro computing", "time zones", "fermentation",
    "optimistic locking", "board games", "technical writing", "bouldering",
)  # fmt: skip
TITLE_TEMPLATES = (
    "Notes on {topic}", "What I learned about {topic}", "A beginner's guide to {topic}",
    "Why I care about {topic}", "{Topic}, revisited", "Ten minutes with {topic}",
    "The trouble with {topic}", "How we approach {topic}", "{Topic}: a field report",
    "Things nobody tells you about {topic}", "My first month of {topic}", "In defence of {topic}",
)  # fmt: skip
WORDS = (
    "the", "a", "we", "it", "this", "that", "every", "some", "most", "our", "their", "one",
    "time", "week", "team", "idea", "question", "answer", "problem", "detail", "result", "plan",
    "habit", "tool", "step", "change", "mistake", "lesson", "morning", "evening", "city", "table",
    "query", "index", "page", "row", "list", "note", "draft", "friend", "neighbour", "book",
    "is", "was", "becomes", "seems", "makes", "takes", "gives", "keeps", "brings", "needs",
    "helps", "shows", "turns", "starts", "ends", "feels", "looks", "works", "breaks", "grows",
    "quickly", "slowly", "carefully", "rarely", "often", "again", "together", "almost", "already",
    "simple", "small", "large", "quiet", "honest", "careful", "strange", "useful", "early", "late",
    "better", "worse", "clear", "patient", "cheap", "expensive", "fresh", "old", "new", "local",
    "with", "without", "after", "before", "during", "around", "under", "over", "between", "for",
    "and", "but", "so", "because", "while", "although", "when", "until", "then", "still",
)  # fmt: skip

SENTENCE_POOL = 3000


@dataclass(frozen=True)
class DemoUser:
    first_name: str
    last_name: str
    created_at: datetime

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


@dataclass(frozen=True)
class DemoPost:
    title: str
    content: str
    created_at: datetime


def ascii_slug(name: str) -> str:
    """``"Zoë"`` -> ``"zoe"``, ``"O'Brien"`` -> ``"obrien"``, ``"van Rossum"`` -> ``"vanrossum"``."""
    decomposed = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return "".join(char for char in decomposed.lower() if char.isalnum())


class DemoData:
    """Names, emails, titles and paragraphs; the same seed gives the same data."""

    def __init__(self, seed: int | None = None, *, now: datetime, history_days: int = 365) -> None:
        self.random = random.Random(seed)
        self.now = now
        self.history = timedelta(days=history_days)
        # Posts draw from a pool of sentences: building every sentence word by word made
        # text generation cost more than the INSERTs (7 s for 100,000 posts).
        self.sentences = [self.sentence() for _ in range(SENTENCE_POOL)]

    def user(self) -> DemoUser:
        offset = self.history * self.random.random()
        return DemoUser(self.random.choice(FIRST_NAMES), self.random.choice(LAST_NAMES), self.now - offset)

    @staticmethod
    def email(user: DemoUser, number: int, tag: str = "") -> str:
        """Lower case, as the API stores them; ``number`` (and ``tag``) keep them unique."""
        local = f"{ascii_slug(user.first_name)}.{ascii_slug(user.last_name)}{number}{tag}"
        return f"{local}@{DOMAINS[number % len(DOMAINS)]}"

    def post(self, author: DemoUser) -> DemoPost:
        topic = self.random.choice(TOPICS)
        template = self.random.choice(TITLE_TEMPLATES)
        title = template.format(topic=topic, Topic=topic[0].upper() + topic[1:])
        paragraphs = [self.paragraph() for _ in range(self.random.randint(1, 4))]
        written = author.created_at + (self.now - author.created_at) * self.random.random()
        return DemoPost(title=title, content="\n\n".join(paragraphs), created_at=written)

    def paragraph(self) -> str:
        return " ".join(self.random.choices(self.sentences, k=self.random.randint(2, 5)))

    def sentence(self) -> str:
        words = self.random.choices(WORDS, k=self.random.randint(6, 16))
        words[0] = words[0].capitalize()
        if len(words) > 8 and self.random.random() < 0.4:
            words[self.random.randint(3, len(words) - 4)] += ","
        return " ".join(words) + self.random.choice((".", ".", ".", "!", "?"))
