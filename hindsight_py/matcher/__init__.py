"""message_matcher: Hindsight's boolean filter language, compiled once to a Python predicate."""
