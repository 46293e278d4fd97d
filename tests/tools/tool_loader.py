"""Import a script of ``tools/`` as a module, for tests."""
import importlib.util
import os.path as osp
import sys

TOOLS = osp.abspath(osp.join(osp.dirname(__file__), '..', '..', 'tools'))


def load_tool(name: str):
    """``tools/<name>.py`` as a module named ``name``."""
    spec = importlib.util.spec_from_file_location(name, osp.join(TOOLS, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
