# Regenerate the lme4 reference data used by the Python test suite.
#
# Run from the repository root:
#
#     Rscript tests/data/make_lme4_reference.R
#
# Writes into tests/data/:
#   Dyestuff.csv Dyestuff2.csv Penicillin.csv Pastes.csv sleepstudy.csv InstEval.csv
#   lme4_reference.json
#
# Requires R packages lme4 and jsonlite. The InstEval fits take ~15 s each.

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

out_dir <- file.path("tests", "data")
if (!dir.exists(out_dir)) {
  stop("run this script from the repository root (tests/data/ not found)")
}

## ---------------------------------------------------------------------------
## Data sets -> CSV (factor columns are written as their labels)
## ---------------------------------------------------------------------------

datasets <- list(
  Dyestuff   = lme4::Dyestuff,
  Dyestuff2  = lme4::Dyestuff2,
  Penicillin = lme4::Penicillin,
  Pastes     = lme4::Pastes,
  sleepstudy = lme4::sleepstudy,
  InstEval   = lme4::InstEval[, c("s", "d", "studage", "lectage",
                                  "service", "dept", "y")]
)

for (nm in names(datasets)) {
  df <- datasets[[nm]]
  # write.csv writes factors via as.character(); make that explicit
  df[] <- lapply(df, function(col) if (is.factor(col)) as.character(col) else col)
  write.csv(df, file.path(out_dir, paste0(nm, ".csv")), row.names = FALSE)
}

# R factor level order (CSV readers will not reproduce it). The very large
# grouping factors of InstEval (s: 2972 levels, d: 1128 levels) are omitted.
factor_levels <- lapply(names(datasets), function(nm) {
  df <- datasets[[nm]]
  fcols <- names(df)[vapply(df, is.factor, logical(1))]
  if (nm == "InstEval") fcols <- setdiff(fcols, c("s", "d"))
  setNames(lapply(fcols, function(cc) levels(df[[cc]])), fcols)
})
names(factor_levels) <- names(datasets)

## ---------------------------------------------------------------------------
## Models
## ---------------------------------------------------------------------------

models <- list(
  dyestuff          = list(formula = "Yield ~ 1 + (1 | Batch)",
                           data = "Dyestuff", singular_ok = FALSE),
  dyestuff2         = list(formula = "Yield ~ 1 + (1 | Batch)",
                           data = "Dyestuff2", singular_ok = TRUE),
  penicillin        = list(formula = "diameter ~ 1 + (1 | plate) + (1 | sample)",
                           data = "Penicillin", singular_ok = FALSE),
  pastes            = list(formula = "strength ~ 1 + (1 | batch/cask)",
                           data = "Pastes", singular_ok = FALSE),
  sleepstudy_uncorr = list(formula = "Reaction ~ 1 + Days + (1 | Subject) + (0 + Days | Subject)",
                           data = "sleepstudy", singular_ok = FALSE),
  sleepstudy_corr   = list(formula = "Reaction ~ 1 + Days + (1 + Days | Subject)",
                           data = "sleepstudy", singular_ok = FALSE),
  insteval          = list(formula = "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service)",
                           data = "InstEval", singular_ok = FALSE)
)

# Conditional modes are stored for these (REML fits only).
ranef_models <- c("dyestuff", "penicillin")

# bobyqa with a much smaller final trust-region radius than the default
# (minqa default rhoend = 1e-6 * rhobeg) so the stored optimum is converged
# well beyond the tolerances the Python tests use.
ctrl <- lmerControl(optimizer = "bobyqa",
                    optCtrl = list(maxfun = 1e5, rhoend = 1e-12),
                    check.conv.grad = .makeCC("warning", tol = 2e-3, relTol = NULL))

na_to_null <- function(x) if (length(x) == 0 || is.na(x)) NULL else x

varcorr_entries <- function(fit) {
  vc <- as.data.frame(VarCorr(fit))
  lapply(seq_len(nrow(vc)), function(i) {
    list(grp   = vc$grp[i],
         var1  = na_to_null(vc$var1[i]),
         var2  = na_to_null(vc$var2[i]),
         vcov  = vc$vcov[i],
         sdcor = vc$sdcor[i])
  })
}

ranef_entries <- function(fit) {
  re <- ranef(fit, condVar = TRUE)
  out <- lapply(names(re), function(g) {
    df <- re[[g]]
    stopifnot(ncol(df) == 1, colnames(df) == "(Intercept)")
    pv <- attr(df, "postVar")          # 1 x 1 x nlevels array
    lv <- rownames(df)
    list(term    = colnames(df),
         values  = setNames(as.list(df[, 1]), lv),
         postVar = setNames(as.list(as.numeric(pv[1, 1, ])), lv))
  })
  setNames(out, names(re))
}

fit_one <- function(key, spec, reml) {
  dat <- datasets[[spec$data]]
  f <- as.formula(spec$formula)
  t0 <- proc.time()[["elapsed"]]
  fit <- lmer(f, data = dat, REML = reml, control = ctrl)
  elapsed <- proc.time()[["elapsed"]] - t0

  ## convergence checks
  opt <- fit@optinfo
  if (opt$conv$opt != 0) {
    stop(sprintf("%s/%s: optimizer returned code %s: %s", key,
                 if (reml) "REML" else "ML", opt$conv$opt, opt$message))
  }
  msgs <- opt$conv$lme4$messages
  singular <- isSingular(fit, tol = 1e-4)
  bad <- setdiff(msgs, if (spec$singular_ok) "boundary (singular) fit: see help('isSingular')" else character())
  if (length(bad)) {
    stop(sprintf("%s/%s: convergence problems: %s", key,
                 if (reml) "REML" else "ML", paste(bad, collapse = "; ")))
  }
  if (singular && !spec$singular_ok) {
    stop(sprintf("%s: unexpected singular fit", key))
  }
  grad <- opt$derivs$gradient

  fe <- fixef(fit)
  V <- as.matrix(vcov(fit))
  ngrps <- ngrps(fit)

  res <- list(
    formula            = spec$formula,
    data               = paste0(spec$data, ".csv"),
    REML               = reml,
    nobs               = nobs(fit),
    ngrps              = as.list(ngrps),
    logLik             = as.numeric(logLik(fit)),
    objective          = -2 * as.numeric(logLik(fit)),
    REMLcrit           = if (reml) REMLcrit(fit) else NULL,
    deviance           = if (reml) NULL else deviance(fit),
    deviance_at_REML_estimates = if (reml) deviance(fit, REML = FALSE) else NULL,
    AIC                = AIC(fit),
    BIC                = BIC(fit),
    fixef              = as.list(fe),
    fixef_se           = as.list(setNames(sqrt(diag(V)), names(fe))),
    fixef_vcov         = lapply(seq_len(nrow(V)), function(i) as.numeric(V[i, ])),
    sigma2             = sigma(fit)^2,
    sigma              = sigma(fit),
    theta              = as.list(getME(fit, "theta")),
    varcorr            = varcorr_entries(fit),
    singular           = singular,
    convergence        = list(
      optimizer       = "bobyqa",
      optimizer_code  = opt$conv$opt,
      feval           = opt$feval,
      max_abs_gradient = if (is.null(grad)) NULL else max(abs(grad)),
      lme4_messages   = if (length(msgs)) as.list(msgs) else list()
    )
  )
  attr(res, "elapsed") <- elapsed
  if (reml && key %in% ranef_models) {
    res$ranef <- ranef_entries(fit)
  }
  res
}

results <- list()
for (key in names(models)) {
  spec <- models[[key]]
  results[[key]] <- list()
  for (reml in c(TRUE, FALSE)) {
    meth <- if (reml) "REML" else "ML"
    message(sprintf("fitting %-18s %-4s ...", key, meth))
    r <- fit_one(key, spec, reml)
    message(sprintf("   logLik = %.6f  sigma2 = %.6g  (%.2fs)",
                    r$logLik, r$sigma2, attr(r, "elapsed")))
    attr(r, "elapsed") <- NULL
    results[[key]][[meth]] <- r
  }
}

out <- list(
  meta = list(
    generator     = "tests/data/make_lme4_reference.R",
    R_version     = R.version.string,
    lme4_version  = as.character(packageVersion("lme4")),
    Matrix_version = as.character(packageVersion("Matrix")),
    jsonlite_version = as.character(packageVersion("jsonlite")),
    date          = format(Sys.time(), "%Y-%m-%d %H:%M:%S %Z"),
    control       = "lmerControl(optimizer='bobyqa', optCtrl=list(maxfun=1e5, rhoend=1e-12))",
    notes         = paste(
      "objective = -2*logLik (REMLcrit for REML fits, ML deviance for ML fits).",
      "deviance_at_REML_estimates = deviance(fit, REML=FALSE) for REML fits.",
      "sigma2 is the residual variance; varcorr comes from as.data.frame(VarCorr(fit)),",
      "vcov is a variance when var2 is null and a covariance otherwise.",
      "theta is getME(fit,'theta') (relative Cholesky factor entries, lme4 order).",
      "ranef (dyestuff/penicillin REML only): conditional modes and conditional",
      "variances (postVar) of the intercept per grouping-factor level.")
  ),
  factor_levels = factor_levels,
  models = results
)

write_json(out, file.path(out_dir, "lme4_reference.json"),
           digits = NA, auto_unbox = TRUE, pretty = TRUE,
           null = "null", na = "null")
message("wrote ", file.path(out_dir, "lme4_reference.json"))
