"""A synthetic knowledge base: invented people, cities, countries and companies with facts that
link them, and one encyclopedia-style document per entity.

Every name is built from random syllables, so no pretrained model has seen these facts: an agent
can only answer by searching the documents. Relations chain (a company's founder was born in a
city that lies in a country), which gives multi-hop questions whose every hop is a search.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from functools import lru_cache

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr",
           "kr", "st", "tr", "th", "sh", "ch")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ei", "ou")
_CODAS = ("", "", "n", "r", "s", "l", "m", "th", "x")
OCCUPATIONS = ("chemist", "painter", "engineer", "novelist", "architect", "economist",
               "cartographer", "composer", "botanist", "surgeon")
INDUSTRIES = ("shipbuilding", "textiles", "software", "mining", "pharmaceuticals", "publishing",
              "aviation", "agriculture")
LANGUAGES = ("Velish", "Ostric", "Marnese", "Kudari", "Tellic", "Sorvan", "Quenth", "Abrelic")
CURRENCIES = ("crown", "mark", "florin", "talir", "drachm", "ruble", "dinar", "pound")
SUFFIXES = ("Works", "Industries", "Holdings", "Labs", "Group", "Company", "Foundry", "Press")
# One sentence per fact, for a corpus of fact passages; each names the relation with the word a
# searcher adds to ask for it (questions.QUERY_WORDS), so only a query naming both the entity and
# the relation ranks the passage first.
FACT_SENTENCES = {
    "born_in": "The birthplace of {s} is {v}.", "works_for": "The employer of {s} is {v}.",
    "birth_year": "{s} was born in the year {v}.", "occupation": "The occupation of {s} is {v}.",
    "country": "The country of {s} is {v}.", "mayor": "The mayor of {s} is {v}.",
    "founded": "{s} was founded in {v}.", "capital": "The capital of {s} is {v}.",
    "language": "The language of {s} is {v}.", "currency": "The currency of {s} is the {v}.",
    "founded_by": "The founder of {s} is {v}.", "headquarters": "The headquarters of {s} are in {v}.",
    "industry": "The industry of {s} is {v}.",
}


@dataclass
class Entity:
    """A thing the knowledge base knows about; `facts` maps a relation to a value or entity id."""

    id: str
    kind: str  # person | city | country | company
    name: str
    facts: dict[str, str] = field(default_factory=dict)


@dataclass
class KnowledgeBase:
    entities: dict[str, Entity]

    def by_kind(self, kind: str) -> list[Entity]:
        return [e for e in self.entities.values() if e.kind == kind]

    def value(self, entity: Entity, relation: str) -> str:
        """A fact as text: an entity's name when the fact links to one."""
        raw = entity.facts[relation]
        return self.entities[raw].name if raw in self.entities else raw

    def documents(self) -> list[dict[str, str]]:
        """One document per entity: `id`, `title`, `text` (what a search index holds)."""
        return [{"id": e.id, "title": e.name, "text": self.describe(e)}
                for e in self.entities.values()]

    def fact_documents(self) -> list[dict[str, str]]:
        """One short passage per fact (`id` "<entity id>/<relation>", `title` the entity's name):
        a corpus where the entity's name alone does not say which of its passages comes first."""
        return [{"id": f"{e.id}/{r}", "title": e.name,
                 "text": FACT_SENTENCES[r].format(s=e.name, v=self.value(e, r))}
                for e in self.entities.values() for r in e.facts]

    def describe(self, e: Entity) -> str:
        def v(relation: str) -> str:
            return self.value(e, relation)

        if e.kind == "person":
            return (f"{e.name} is a {v('occupation')} born in {v('born_in')} in {v('birth_year')}. "
                    f"{e.name} works for {v('works_for')}.")
        if e.kind == "city":
            return (f"{e.name} is a city in {v('country')}. It was founded in {v('founded')} and "
                    f"its mayor is {v('mayor')}.")
        if e.kind == "country":
            return (f"{e.name} is a country whose capital is {v('capital')}. Its people speak "
                    f"{v('language')} and pay in the {v('currency')}.")
        return (f"{e.name} is a {v('industry')} company founded in {v('founded')} by "
                f"{v('founded_by')}. Its headquarters are in {v('headquarters')}.")


@lru_cache(maxsize=8)
def build_kb(seed: int = 0, people: int = 120, cities: int = 40, countries: int = 10,
             companies: int = 50) -> KnowledgeBase:
    """A knowledge base of the given size, fully determined by `seed`."""
    for name, n in (("people", people), ("cities", cities), ("countries", countries),
                    ("companies", companies)):
        if n < 2:
            raise ValueError(f"search_qa kb.{name}={n}: must be >= 2")
    rng = random.Random(int(hashlib.sha256(repr(("kb", seed)).encode()).hexdigest()[:16], 16))
    used: set[str] = set()

    def name(words: int) -> str:
        while True:
            text = " ".join(_word(rng) for _ in range(words))
            if text not in used:
                used.add(text)
                return text

    country_ids = [f"country{i}" for i in range(countries)]
    city_ids = [f"city{i}" for i in range(cities)]
    person_ids = [f"person{i}" for i in range(people)]
    company_ids = [f"company{i}" for i in range(companies)]
    entities: dict[str, Entity] = {}
    for cid in country_ids:
        entities[cid] = Entity(cid, "country", name(1), {
            "language": rng.choice(LANGUAGES), "currency": rng.choice(CURRENCIES)})
    for i, cid in enumerate(city_ids):
        # Every country gets a capital first, so each one has at least one city.
        country = country_ids[i] if i < countries else rng.choice(country_ids)
        entities[cid] = Entity(cid, "city", name(1), {
            "country": country, "founded": str(rng.randint(900, 1890))})
        if i < countries:
            entities[country].facts["capital"] = cid
    for pid in person_ids:
        entities[pid] = Entity(pid, "person", name(2), {
            "occupation": rng.choice(OCCUPATIONS), "born_in": rng.choice(city_ids),
            "birth_year": str(rng.randint(1900, 1999))})
    for cid in company_ids:
        entities[cid] = Entity(cid, "company", f"{name(1)} {rng.choice(SUFFIXES)}", {
            "industry": rng.choice(INDUSTRIES), "founded": str(rng.randint(1850, 2015)),
            "founded_by": rng.choice(person_ids), "headquarters": rng.choice(city_ids)})
    for pid in person_ids:
        entities[pid].facts["works_for"] = rng.choice(company_ids)
    for cid in city_ids:
        entities[cid].facts["mayor"] = rng.choice(person_ids)
    return KnowledgeBase(entities)


def _word(rng: random.Random) -> str:
    syllables = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(rng.randint(1, 2)))
    return (syllables + rng.choice(_CODAS)).capitalize()
