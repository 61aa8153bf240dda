# lme4 predict() and Nakagawa-Schielzeth R^2 reference numbers.
#
# Run from the repository root:
#
#     Rscript tests/data/make_predict_reference.R
#
# Writes into tests/data/:
#   lme4_predict.json
#   predict_newdata_<key>.csv   (one per model: the newdata frames)
#
# Uses the data CSVs written by make_lme4_reference.R (the lme4 data sets
# themselves, so the fits are the same). Requires lme4, jsonlite and
# performance (Debian: r-cran-performance). Takes a few seconds.

source(file.path("tests", "data", "reference_common.R"))
suppressPackageStartupMessages(library(performance))

datasets <- list(sleepstudy = lme4::sleepstudy,
                 Penicillin = lme4::Penicillin,
                 Pastes     = lme4::Pastes)

## ---------------------------------------------------------------------------
## newdata frames: existing levels, NEW (unseen) labels, new covariate values
## ---------------------------------------------------------------------------

nd_sleep <- data.frame(
  Subject = c("308", "308", "335", "372", "999", "999", "new_subject", "309"),
  Days    = c(0,     4.5,   12,    -1,    0,     5,     10,            9),
  stringsAsFactors = FALSE)
nd_sleep$status <- ifelse(nd_sleep$Subject %in% levels(sleepstudy$Subject),
                          "existing", "new")

nd_pen <- data.frame(
  plate  = c("a", "x", "z9", "a",  "z9", "m", "new_plate"),
  sample = c("A", "F", "A",  "G",  "G",  "C", "new_sample"),
  stringsAsFactors = FALSE)
nd_pen$status <- paste0("plate:",
  ifelse(nd_pen$plate %in% levels(Penicillin$plate), "existing", "new"),
  ",sample:",
  ifelse(nd_pen$sample %in% levels(Penicillin$sample), "existing", "new"))

# (1 | batch/cask) = (1 | batch) + (1 | cask:batch); cask:batch level labels
# are "<cask>:<batch>" (e.g. "a:A"). Row 3 is an existing batch with a new
# cask (so a new cask:batch level); rows 4-5 a new batch.
nd_pastes <- data.frame(
  batch = c("A", "J", "A", "K", "K", "E"),
  cask  = c("a", "c", "d", "a", "d", "b"),
  stringsAsFactors = FALSE)
nd_pastes$status <- paste0("batch:",
  ifelse(nd_pastes$batch %in% levels(Pastes$batch), "existing", "new"),
  ",cask:batch:",
  ifelse(paste(nd_pastes$cask, nd_pastes$batch, sep = ":") %in%
           levels(with(Pastes, cask:batch)), "existing", "new"))

models <- list(
  sleepstudy_corr = list(
    formula = "Reaction ~ 1 + Days + (1 + Days | Subject)",
    data = "sleepstudy", newdata = nd_sleep, partial = list()),
  sleepstudy_uncorr = list(
    formula = "Reaction ~ 1 + Days + (1 | Subject) + (0 + Days | Subject)",
    data = "sleepstudy", newdata = nd_sleep, partial = list()),
  penicillin = list(
    formula = "diameter ~ 1 + (1 | plate) + (1 | sample)",
    data = "Penicillin", newdata = nd_pen,
    partial = list(plate_only = "~ (1 | plate)", sample_only = "~ (1 | sample)")),
  pastes = list(
    formula = "strength ~ 1 + (1 | batch/cask)",
    data = "Pastes", newdata = nd_pastes,
    partial = list(batch_only = "~ (1 | batch)"))
)

## ---------------------------------------------------------------------------
## Nakagawa & Schielzeth R^2 computed by hand (documented formulas) as a
## cross-check of performance::r2_nakagawa.
##   var_fixed  = var(X %*% beta)            (R's var: n - 1 denominator)
##   var_random = sum over random-effect terms of mean(diag(Z_t Sigma_t Z_t'))
##                (Johnson 2014); for an intercept-only term this is sigma_t^2
##   var_resid  = sigma^2
##   R2_marginal    = var_fixed / (var_fixed + var_random + var_resid)
##   R2_conditional = (var_fixed + var_random) / (same denominator)
## ---------------------------------------------------------------------------

r2_by_hand <- function(fit) {
  X <- getME(fit, "X")
  var_fixed <- var(as.numeric(X %*% fixef(fit)))
  vc <- VarCorr(fit)
  mf <- model.frame(fit)
  per_term <- sapply(names(vc), function(g) {
    Sigma <- as.matrix(vc[[g]])
    cn <- colnames(Sigma)
    Z <- X[, cn, drop = FALSE]      # random-effect covariates are columns of X here
    mean(rowSums((Z %*% Sigma) * Z))
  })
  var_random <- sum(per_term)
  var_resid <- sigma(fit)^2
  tot <- var_fixed + var_random + var_resid
  list(var_fixed = var_fixed,
       var_random = var_random,
       var_random_per_term = as.list(per_term),
       var_residual = var_resid,
       R2_marginal = var_fixed / tot,
       R2_conditional = (var_fixed + var_random) / tot)
}

## ---------------------------------------------------------------------------

results <- list()
for (key in names(models)) {
  spec <- models[[key]]
  dat <- datasets[[spec$data]]
  message("fitting ", key)
  fit <- fit_strict(lmer(as.formula(spec$formula), data = dat, REML = TRUE,
                         control = lmer_ctrl), key)
  conv <- check_merMod(fit, key)

  nd <- spec$newdata
  nd_file <- paste0("predict_newdata_", key, ".csv")
  write_csv_labels(nd, nd_file)

  pred_re   <- predict(fit, re.form = NULL)
  pred_fix  <- predict(fit, re.form = NA)
  stopifnot(isTRUE(all.equal(as.numeric(pred_re), as.numeric(fitted(fit)))))
  nd_re  <- predict(fit, newdata = nd, re.form = NULL, allow.new.levels = TRUE)
  nd_fix <- predict(fit, newdata = nd, re.form = NA)

  # Check the new-level rule explicitly: new-level rows of the population
  # fit must equal the re.form = NA prediction plus only known-level effects.
  partial <- lapply(spec$partial, function(rf) {
    list(re_form = rf,
         fitting_data = as.numeric(predict(fit, re.form = as.formula(rf))),
         newdata = as.numeric(predict(fit, newdata = nd, re.form = as.formula(rf),
                                      allow.new.levels = TRUE)))
  })

  r2_perf <- suppressWarnings(performance::r2_nakagawa(fit))
  v_perf <- suppressWarnings(insight::get_variance(fit))
  r2_hand <- r2_by_hand(fit)
  r2_diff <- max(abs(c(r2_perf$R2_marginal - r2_hand$R2_marginal,
                       r2_perf$R2_conditional - r2_hand$R2_conditional)))
  r2_agree <- r2_diff < 1e-10
  if (!r2_agree) {
    message(sprintf("   NOTE %s: performance::r2_nakagawa differs from the formula by %g",
                    key, r2_diff))
  }

  sens <- refit_sensitivity(fit, function(f) list(
    logLik = as.numeric(logLik(f)),
    fixef = fixef(f), theta = getME(f, "theta"), sigma = sigma(f),
    ranef = unlist(ranef(f)),
    predict_fitting_data = predict(f),
    predict_newdata = predict(f, newdata = nd, allow.new.levels = TRUE),
    R2 = unlist(r2_by_hand(f)[c("R2_marginal", "R2_conditional")])))
  print(signif(summarise_sensitivity(sens), 2))

  s <- merMod_summary(fit)
  results[[key]] <- c(
    list(formula = spec$formula,
         data = paste0(spec$data, ".csv"),
         newdata_file = nd_file),
    s,
    list(
      convergence = conv,
      ranef = ranef_entries(fit),
      predict = list(
        fitting_data = list(
          re_form_NULL = as.numeric(pred_re),
          re_form_NA   = as.numeric(pred_fix)),
        newdata = list(
          rows = lapply(seq_len(nrow(nd)), function(i) as.list(nd[i, , drop = FALSE])),
          re_form_NULL_allow_new_levels = as.numeric(nd_re),
          re_form_NA = as.numeric(nd_fix)),
        partial = partial),
      r2_nakagawa = c(
        r2_hand[c("R2_marginal", "R2_conditional")],
        list(source = "formula (Nakagawa & Schielzeth 2013; Johnson 2014 for slopes)"),
        r2_hand[c("var_fixed", "var_random", "var_random_per_term", "var_residual")],
        list(performance = list(
          R2_marginal    = as.numeric(r2_perf$R2_marginal),
          R2_conditional = as.numeric(r2_perf$R2_conditional),
          var_fixed      = as.numeric(v_perf$var.fixed),
          var_random     = as.numeric(v_perf$var.random),
          var_residual   = as.numeric(v_perf$var.residual),
          agrees_with_formula = r2_agree,
          max_abs_diff   = r2_diff)))
      ,
      optimizer_sensitivity = sens
    ))
  message(sprintf("   logLik %.6f  R2m %.6f  R2c %.6f", s$logLik,
                  r2_hand$R2_marginal, r2_hand$R2_conditional))
}

out <- list(
  meta = r_meta("tests/data/make_predict_reference.R",
                extra_pkgs = c("performance", "insight"),
                control = lmer_ctrl_text,
                notes = paste(
                  "All fits REML. predict$fitting_data: predict(fit, re.form=NULL) and",
                  "predict(fit, re.form=NA) in the row order of the data CSV.",
                  "predict$newdata: rows of predict_newdata_<key>.csv (the 'status'",
                  "column is informational, not a predictor);",
                  "re_form_NULL_allow_new_levels = predict(fit, newdata, re.form=NULL,",
                  "allow.new.levels=TRUE): a new (unseen) level contributes 0 for that",
                  "term, known levels their conditional modes; re_form_NA =",
                  "predict(fit, newdata, re.form=NA). partial: predictions with only the",
                  "named random-effect terms (re.form given as text).",
                  "r2_nakagawa: R2_marginal/R2_conditional computed in R from the formulas:",
                  "var_fixed = var(X beta) with R's var (n-1 denominator),",
                  "var_random = sum over terms of mean(rowSums((Z %*% Sigma) * Z))",
                  "(Johnson 2014; = sigma^2 for intercept terms), var_residual = sigma^2,",
                  "R2m = var_fixed/(var_fixed+var_random+var_residual),",
                  "R2c = (var_fixed+var_random)/(same). r2_nakagawa$performance holds",
                  "performance::r2_nakagawa / insight::get_variance for comparison: it",
                  "agrees to < 1e-10 except for sleepstudy_uncorr, where insight 0.19.0",
                  "drops the separate (0 + Days | Subject) term ('Subject.1') from",
                  "var_random (a limitation of that version), so use the formula values.",
                  "optimizer_sensitivity: max abs/rel differences of each item when the",
                  "model is refitted with Nelder_Mead and nloptwrap (NLOPT_LN_BOBYQA),",
                  "tight tolerances.")),
  factor_levels = lapply(datasets, factor_levels_of),
  models = results
)

write_reference_json(out, "lme4_predict.json")
