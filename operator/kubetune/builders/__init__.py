"""Pure constructors of the objects the operator owns: (model, settings) -> manifest dict.

No API calls, no clock: the same input always gives the same manifest, which is what makes
every handler idempotent and every manifest testable by snapshot.
"""
