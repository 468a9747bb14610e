"""Errors meant for people: each says what was wrong, with the offending value, and what to do.

The CLI turns any `NbentoError` into one readable line and exit code 1; the magics show it
in the cell output; the HTTP layer maps the request-shaped ones to 4xx answers.
"""

from __future__ import annotations


class NbentoError(Exception):
    """Base class for every error nbento raises on purpose."""


class InvalidName(NbentoError, ValueError):
    """A model, service or runner name breaks the naming rule."""


class ModelNotFound(NbentoError, LookupError):
    """No model (or no such version) in the store."""


class ChecksumMismatch(NbentoError):
    """An artifact on disk does not match the sha256 recorded when it was saved."""


class SerializationError(NbentoError):
    """No serializer can save or load this object."""


class ServiceLoadError(NbentoError):
    """A service module failed to import or defines no API."""


class SignatureError(NbentoError, AttributeError):
    """A model handle was asked for a method the model did not save a signature for."""


class BuildError(NbentoError):
    """A Bento build or export refused its input (secrets, missing models, bad options)."""


class BatchInputError(NbentoError, ValueError):
    """A batchable method was called with something that has no rows (a scalar, a string), or
    with row arguments of different lengths."""


class BatchOutputError(NbentoError):
    """A batchable method returned something that cannot be split back into rows."""
