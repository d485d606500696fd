"""``sys.fail``'s ``code`` is held to the error code rule when the definition loads."""

from __future__ import annotations

import pytest

from flowledger import Engine
from flowledger.errors import DefinitionError


def test_a_literal_code_that_is_no_code_is_refused_where_it_is_written(engine: Engine) -> None:
    text = "name: bad\nsteps:\n  - {id: stop, type: sys.fail, input: {code: 'no code'}}\n"
    with pytest.raises(DefinitionError) as caught:
        engine.load_text(text, "bad.yaml")
    message = str(caught.value)
    assert "bad.yaml:3:" in message
    assert "step 'stop'" in message
    assert '"no code" is not an error code' in message


def test_a_good_code_loads(engine: Engine) -> None:
    text = "name: ok\nsteps:\n  - {id: stop, type: sys.fail, input: {code: Stock.out-1}}\n"
    assert engine.load_text(text).steps["stop"].spec.input == {"code": "Stock.out-1"}
