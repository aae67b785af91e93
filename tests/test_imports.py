"""The house has no circles: no llamass module imports, directly or through others, a module that imports it back,
counting imports inside functions too. And the light entry points stay light."""
import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "llamass"


def imported_modules(path):
    "The llamass modules that the module at `path` imports anywhere in its body (functions included)."
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1: found.add(node.module or "")
            elif node.module and node.module.startswith("llamass."): found.add(node.module.split(".")[1])
            elif node.module == "llamass": found.update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("llamass."))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            if node.args and isinstance(node.args[0], ast.Constant) and str(node.args[0].value).startswith("llamass."):
                found.add(node.args[0].value.split(".")[1])
    return found


def import_graph(package=PACKAGE):
    "{module: the llamass modules it imports}, for every module of the package but `_modidx` and `__init__`."
    modules = {p.stem: p for p in package.glob("*.py") if p.stem not in ("_modidx", "__init__")}
    return {name: sorted(imported_modules(path) & set(modules)) for name, path in modules.items()}


def cycles(graph):
    "Every import cycle of `graph`, each as a list of modules from one back to itself (empty: none)."
    found, state = [], {}
    def visit(node, trail):
        state[node] = "open"
        for nxt in graph[node]:
            if state.get(nxt) == "open": found.append(trail[trail.index(nxt):] + [nxt])
            elif nxt not in state: visit(nxt, trail + [nxt])
        state[node] = "done"
    for node in sorted(graph):
        if node not in state: visit(node, [node])
    return found


def layers(graph):
    "The modules in layers: each imports only modules of lower layers."
    placed, result = set(), []
    while len(placed) < len(graph):
        layer = sorted(m for m in graph if m not in placed and set(graph[m]) <= placed)
        if not layer: raise ValueError(f"a cycle among {sorted(set(graph) - placed)}")
        result.append(layer)
        placed |= set(layer)
    return result


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": []}) == [["a", "b", "c", "a"]]
    assert cycles({"a": ["b"], "b": [], "c": ["a", "b"]}) == []


def test_no_import_cycle():
    graph = import_graph()
    assert "dataset" in graph and "vocabulary" in graph
    assert cycles(graph) == [], cycles(graph)
    assert layers(graph)[0][:1] and "vocabulary" in layers(graph)[0]


def modules_loaded_by(statement):
    "The llamass modules and whether torch is loaded after running `statement` in a fresh interpreter."
    code = f"{statement}\nimport sys\nprint(sorted(m for m in sys.modules if m.startswith('llamass.')), 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    names, torch = out.rsplit(" ", 1)
    return ast.literal_eval(names), torch.strip() == "True"


def test_core_does_not_import_the_test_data_maker():
    loaded, _ = modules_loaded_by("import llamass.core")
    assert "llamass.synthetic" not in loaded and "llamass.dataset" in loaded


def test_console_scripts_that_need_no_torch_do_not_import_it():
    for module in ("llamass.unpack", "llamass.splits", "llamass.store", "llamass.vocabulary"):
        loaded, torch = modules_loaded_by(f"import {module}")
        assert not torch, f"import {module} loads torch (through {loaded})"


if __name__ == "__main__":
    for n, layer in enumerate(layers(import_graph())): print(f"layer {n}: {', '.join(layer)}")
