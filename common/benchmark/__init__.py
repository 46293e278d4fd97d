"""The benchmarks' shared parts, one job per module; ``tools/benchmark*.py`` are thin command lines.

* :mod:`.environment`: what machine and software a result came from.
* :mod:`.records`: JSON files written atomically, MMEngine run directories read back.
* :mod:`.run_cache`: finished runs reused.
* :mod:`.workers`: worker processes side by side, sharing groups of runs through claim files.
* :mod:`.accuracy_plan`: the accuracy grid's recipes, run specs (the cache keys) and order.
* :mod:`.mmengine_runs`: one accuracy run through MMEngine's Runner, with what the optimizer did.
* :mod:`.accuracy_grid`: the grid executed, in this process or in parallel workers.
* :mod:`.claims`: summaries over seeds, paired gains and the claims with their verdicts.
* :mod:`.tables` and :mod:`.plots`: markdown tables and figures.
* :mod:`.speed`: side-by-side step timing, pass counting and memory of the optimizers.

MMEngine is imported by :mod:`.mmengine_runs` and :mod:`.accuracy_grid`, and lazily where a
recipe is hashed or its version recorded.
"""
