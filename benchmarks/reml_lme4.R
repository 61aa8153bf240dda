# lme4 side of benchmarks/reml.py: fit the benchmark designs by REML and print, per design,
# simple `design.key=value` lines that reml.py parses.
#
# Usage: Rscript benchmarks/reml_lme4.R DIR REPEATS
#   DIR      directory holding nested.csv, crossed.csv and (optionally) insteval.csv, as
#            written by reml.py (a design whose CSV is absent is skipped)
#   REPEATS  how many times to fit the small designs (nested, crossed); the reported time is
#            the fastest `system.time(lmer(...))["elapsed"]`. InstEval is fitted
#            min(REPEATS, 2) times.
#
# Output (stdout), one line each:
#   lme4.version=1.1.31
#   nested.time=0.291          (best elapsed seconds of one lmer() call)
#   nested.times=0.35,0.29,..  (every repeat)
#   nested.loglik=-116022.38   (logLik of the REML fit, i.e. -REML criterion / 2)
#   nested.nobs=40000

suppressPackageStartupMessages(library(lme4))

args <- commandArgs(trailingOnly = TRUE)
dir <- if (length(args) >= 1) args[1] else "."
repeats <- if (length(args) >= 2) as.integer(args[2]) else 3L

out <- function(key, value) cat(sprintf("%s=%s\n", key, value))
out("lme4.version", as.character(packageVersion("lme4")))
out("R.version", paste(R.version$major, R.version$minor, sep = "."))

read_factors <- function(path, factors) {
  df <- read.csv(path, colClasses = "character")
  for (nm in names(df)) {
    if (nm %in% factors) df[[nm]] <- factor(df[[nm]]) else df[[nm]] <- as.numeric(df[[nm]])
  }
  df
}

designs <- list(
  nested   = list(file = "nested.csv", factors = c("group1", "group2"),
                  formula = y ~ 1 + (1 | group1/group2), reps = repeats),
  crossed  = list(file = "crossed.csv", factors = c("group1", "group2"),
                  formula = y ~ 1 + (1 | group1) + (1 | group2), reps = repeats),
  insteval = list(file = "insteval.csv", factors = c("s", "d", "dept", "service"),
                  formula = y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service),
                  reps = min(repeats, 2L))
)

for (name in names(designs)) {
  d <- designs[[name]]
  path <- file.path(dir, d$file)
  if (!file.exists(path)) next
  df <- read_factors(path, d$factors)
  times <- numeric(0)
  fit <- NULL
  for (r in seq_len(max(1L, d$reps))) {
    tm <- system.time(fit <- lmer(d$formula, data = df, REML = TRUE))
    times <- c(times, unname(tm["elapsed"]))
  }
  out(paste0(name, ".time"), sprintf("%.4f", min(times)))
  out(paste0(name, ".times"), paste(sprintf("%.4f", times), collapse = ","))
  out(paste0(name, ".loglik"), sprintf("%.10f", as.numeric(logLik(fit))))
  out(paste0(name, ".nobs"), nrow(df))
  flush.console()
}
