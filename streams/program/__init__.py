"""The loyalty program's rules file: its pydantic model, loading, and the program in words."""

from streams.program.describe import describe_program
from streams.program.load import ProgramError, load_program, parse_program, rules_version

__all__ = ["ProgramError", "describe_program", "load_program", "parse_program", "rules_version"]
