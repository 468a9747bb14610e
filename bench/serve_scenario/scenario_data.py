"""The benchmark's labelled texts and request texts, shared by every server in the comparison.

Standard library only: the BentoML service imports this from its own virtual environment, and
the wrk Lua script builds its request texts from the same word lists (kept in step by hand; the
Lua file says so). Deterministic, so every server fits the same LogisticRegression.
"""

from __future__ import annotations

import itertools

# Sorted: scikit-learn orders `classes_` this way, so index i of predict_proba is LABELS[i].
LABELS: tuple[str, ...] = ("account", "billing", "shipping", "technical")

_TOPICS: dict[str, tuple[str, ...]] = {
    "account": (
        "I cannot log in to my account",
        "please reset my password",
        "how do I change the email on my profile",
        "my account was locked after too many attempts",
        "delete my user account and personal data",
        "two factor code never arrives when I sign in",
        "I want to update my username",
        "someone else may have access to my login",
    ),
    "billing": (
        "I was charged twice for my order",
        "please send me a refund for the last invoice",
        "my credit card payment was declined",
        "why is there an extra fee on my bill",
        "cancel my subscription before the next charge",
        "the invoice shows the wrong amount",
        "can I pay with a bank transfer instead",
        "I need a receipt for my last payment",
    ),
    "shipping": (
        "my package has not arrived yet",
        "the parcel tracking number does not work",
        "can you deliver to a different address",
        "the box arrived damaged and wet",
        "how long does express delivery take",
        "the courier left my parcel at the wrong door",
        "my order is stuck in customs",
        "I received someone else's package",
    ),
    "technical": (
        "the app crashes when I open settings",
        "the website shows an error 500 page",
        "sync between my phone and laptop is broken",
        "the export button does nothing",
        "the page loads very slowly since the update",
        "notifications stopped working on android",
        "the api returns a timeout for every request",
        "the screen stays blank after I click save",
    ),
}

_PREFIXES = ("", "hello, ", "hi team, ", "urgent: ")
_SUFFIXES = ("", " thanks", " please help", " since yesterday")


def training_set() -> tuple[list[str], list[str]]:
    """Texts and labels to fit the classifier on: each base sentence with a few greetings."""
    texts: list[str] = []
    labels: list[str] = []
    for label, sentences in _TOPICS.items():
        for sentence, prefix, suffix in itertools.product(sentences, _PREFIXES[:2], _SUFFIXES[:2]):
            texts.append(f"{prefix}{sentence}{suffix}")
            labels.append(label)
    return texts, labels


def request_texts(n: int = 128) -> list[str]:
    """`n` distinct short texts like the ones wrk sends (one per request)."""
    sentences = [s for group in _TOPICS.values() for s in group]
    combos = itertools.product(_SUFFIXES, _PREFIXES, sentences)
    return [f"{prefix}{sentence}{suffix}" for suffix, prefix, sentence in itertools.islice(combos, n)]
