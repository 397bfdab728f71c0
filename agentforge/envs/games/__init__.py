"""Built-in multi-turn games (wordle, maze, textcraft, sql, todo) and their oracle policies."""
