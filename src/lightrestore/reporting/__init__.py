"""Results files, the sweep report, convergence tables, plots and the experiment loggers."""
