"""message_matcher: Hindsight's boolean filter language, compiled once to a Python predicate."""

from hindsight_py.matcher.compile import Matcher, Predicate, compile_matcher
from hindsight_py.matcher.parser import MatcherSyntaxError, Parsed, parse

__all__ = ["Matcher", "MatcherSyntaxError", "Parsed", "Predicate", "compile_matcher", "parse"]
