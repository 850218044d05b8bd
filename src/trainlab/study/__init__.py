"""Many runs: comparisons of recipe variants over seeds."""

from trainlab.study.compare import CompareSpec, Row, compare, format_table, load_compare_spec

__all__ = ["CompareSpec", "Row", "compare", "format_table", "load_compare_spec"]
