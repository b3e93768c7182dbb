"""Pure scoring functions (text -> numbers). The registry and the other metrics come with issue #4."""
