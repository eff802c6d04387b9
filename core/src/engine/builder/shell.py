"""Docker's shell-word processing for Dockerfile instructions (moby's shell.Lex, its behaviour).

Variables come from the build's environment map; single quotes are literal, double quotes allow
``$`` expansion and escaping of ``"``, ``$`` and the escape token. Unset variables expand to "".
"""

from __future__ import annotations

from collections.abc import Mapping

from engine.errors import InvalidParameter

_NAME_START = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME_CHARS = _NAME_START | set("0123456789")


class Lexer:
    def __init__(self, escape: str = "\\") -> None:
        self.escape = escape

    def word(self, text: str, env: Mapping[str, str]) -> str:
        """One word: quotes removed, variables expanded (``ENV``, ``LABEL``, ``WORKDIR``...)."""
        words, _ = self._process(text, env, split=False)
        return "".join(words)

    def words(self, text: str, env: Mapping[str, str]) -> list[str]:
        """Several words, split at unquoted whitespace after expansion (``EXPOSE``, ``VOLUME``...)."""
        words, _ = self._process(text, env, split=True)
        return words

    def _process(self, text: str, env: Mapping[str, str], split: bool) -> tuple[list[str], int]:
        words: list[str] = []
        current: list[str] = []
        in_word = False
        i = 0
        n = len(text)
        while i < n:
            ch = text[i]
            if split and ch in " \t\r\n":
                if in_word:
                    words.append("".join(current))
                    current = []
                    in_word = False
                i += 1
                continue
            in_word = True
            if ch == "'":
                end = text.find("'", i + 1)
                if end < 0:
                    raise InvalidParameter("unexpected end of statement while looking for matching single-quote")
                current.append(text[i + 1 : end])
                i = end + 1
            elif ch == '"':
                i = self._double_quoted(text, i + 1, env, current)
            elif ch == self.escape:
                if i + 1 < n:
                    current.append(text[i + 1])
                    i += 2
                else:
                    current.append(ch)
                    i += 1
            elif ch == "$":
                value, i = self._dollar(text, i + 1, env)
                current.append(value)
            else:
                current.append(ch)
                i += 1
        if in_word or not split:
            words.append("".join(current))
        return words, i

    def _double_quoted(self, text: str, i: int, env: Mapping[str, str], out: list[str]) -> int:
        n = len(text)
        while i < n:
            ch = text[i]
            if ch == '"':
                return i + 1
            if ch == "$":
                value, i = self._dollar(text, i + 1, env)
                out.append(value)
                continue
            if ch == self.escape and i + 1 < n and text[i + 1] in ('"', "$", self.escape):
                out.append(text[i + 1])
                i += 2
                continue
            out.append(ch)
            i += 1
        raise InvalidParameter("unexpected end of statement while looking for matching double-quote")

    def _dollar(self, text: str, i: int, env: Mapping[str, str]) -> tuple[str, int]:
        n = len(text)
        if i >= n:
            return "$", i
        if text[i] != "{":
            j = i
            if text[j] not in _NAME_START:
                return "$", i
            while j < n and text[j] in _NAME_CHARS:
                j += 1
            return env.get(text[i:j], ""), j
        j = i + 1
        start = j
        while j < n and text[j] in _NAME_CHARS:
            j += 1
        name = text[start:j]
        if j >= n:
            raise InvalidParameter("missing '}'")
        if text[j] == "}":
            if not name:
                raise InvalidParameter(f"bad substitution: {text[i - 1 : j + 1]}")
            return env.get(name, ""), j + 1
        if text[j] == ":" and j + 1 < n and text[j + 1] in "-+":
            modifier = text[j + 1]
            word, end = self._until_brace(text, j + 2, env)
            value = env.get(name, "")
            if modifier == "-":
                return (value if value else word), end
            return (word if value else ""), end
        raise InvalidParameter(f"unsupported modifier ({text[j]}) in substitution")

    def _until_brace(self, text: str, i: int, env: Mapping[str, str]) -> tuple[str, int]:
        """The default/alternative word of ``${x:-word}``: expanded, up to the matching ``}``."""
        out: list[str] = []
        n = len(text)
        while i < n:
            ch = text[i]
            if ch == "}":
                return "".join(out), i + 1
            if ch == "$":
                value, i = self._dollar(text, i + 1, env)
                out.append(value)
            elif ch == self.escape and i + 1 < n:
                out.append(text[i + 1])
                i += 2
            elif ch == "'":
                end = text.find("'", i + 1)
                if end < 0:
                    raise InvalidParameter("unexpected end of statement while looking for matching single-quote")
                out.append(text[i + 1 : end])
                i = end + 1
            elif ch == '"':
                i = self._double_quoted(text, i + 1, env, out)
            else:
                out.append(ch)
                i += 1
        raise InvalidParameter("missing '}'")


def env_map(env: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env or []:
        key, _, value = item.partition("=")
        out[key] = value
    return out
