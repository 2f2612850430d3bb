"""The stub file of the compiled core matches the compiled module and its NumPy twin."""

import ast
import inspect
import re
from importlib import resources

from mtcnn_fast import _core, _reference


def stub_signatures():
    tree = ast.parse((resources.files("mtcnn_fast") / "_core.pyi").read_text())
    return {
        f.name: [a.arg for a in f.args.args]
        for f in tree.body
        if isinstance(f, ast.FunctionDef)
    }


def compiled_parameters(fn):
    first = fn.__doc__.splitlines()[0]
    inside = first[first.index("(") + 1 : first.rindex(") ->")]
    return re.findall(r"(?:^|, )(\w+):", inside)


def test_stub_lists_every_public_function_of_the_core():
    public = {n for n in dir(_core) if not n.startswith("_")}
    assert set(stub_signatures()) == public


def test_stub_parameters_match_the_compiled_core_and_the_twin():
    for name, params in stub_signatures().items():
        assert compiled_parameters(getattr(_core, name)) == params, name
        assert list(inspect.signature(getattr(_reference, name)).parameters) == params, name
