# Reference numbers for profile-likelihood confidence intervals:
# lme4 confint(fit, method = "profile") and confint(fit, method = "Wald"),
# levels 0.95 and 0.90, for ML and REML fits; plus the same interval
# endpoints found by root-finding on the exact profiled deviance (no spline
# interpolation), to show how accurate lme4's interpolated endpoints are.
#
# Run from the repository root:
#
#     Rscript tests/data/make_profile_reference.R
#
# Writes into tests/data/:
#   profile_reference.json
#
# Uses Dyestuff, Dyestuff2, Penicillin, Pastes, sleepstudy (the CSVs from
# make_lme4_reference.R) and Orthodont.csv (from make_weights_reference.R);
# the data come from the R packages directly, so the CSVs are the same data.
# Requires lme4, nlme (for Orthodont), minqa, jsonlite. Takes about 30-60 s.

source(file.path("tests", "data", "reference_common.R"))
suppressPackageStartupMessages(library(minqa))

orth <- as.data.frame(nlme::Orthodont)
orth$Subject <- factor(as.character(orth$Subject),
                       levels = levels(factor(as.character(orth$Subject))))
orth$Sex <- factor(as.character(orth$Sex), levels = c("Male", "Female"))

datasets <- list(Dyestuff = lme4::Dyestuff, Dyestuff2 = lme4::Dyestuff2,
                 Penicillin = lme4::Penicillin, Pastes = lme4::Pastes,
                 sleepstudy = lme4::sleepstudy, Orthodont = orth)

models <- list(
  dyestuff   = list(formula = "Yield ~ 1 + (1 | Batch)", data = "Dyestuff",
                    singular_ok = FALSE),
  dyestuff2  = list(formula = "Yield ~ 1 + (1 | Batch)", data = "Dyestuff2",
                    singular_ok = TRUE),
  penicillin = list(formula = "diameter ~ 1 + (1 | plate) + (1 | sample)",
                    data = "Penicillin", singular_ok = FALSE),
  pastes     = list(formula = "strength ~ 1 + (1 | batch/cask)", data = "Pastes",
                    singular_ok = FALSE),
  sleepstudy_uncorr = list(formula = "Reaction ~ 1 + Days + (1 | Subject) + (0 + Days | Subject)",
                           data = "sleepstudy", singular_ok = FALSE),
  orthodont  = list(formula = "distance ~ 1 + age + (1 | Subject)", data = "Orthodont",
                    singular_ok = FALSE),
  # a correlated term: .sig01 = SD (Intercept), .sig02 = correlation, .sig03 = SD Days
  sleepstudy_corr = list(formula = "Reaction ~ 1 + Days + (1 + Days | Subject)",
                         data = "sleepstudy", singular_ok = FALSE)
)

LEVELS <- c("0.95" = 0.95, "0.90" = 0.90)

## ---------------------------------------------------------------------------
## Names: .sigNN <-> variance component
## ---------------------------------------------------------------------------

# theta order: for each term (fit@cnms order) the lower triangle by columns;
# on the profile's sd/cor scale a diagonal entry is an SD, an off-diagonal
# one a correlation.
sig_map <- function(fit) {
  cnms <- fit@cnms
  vc_names <- names(VarCorr(fit))           # e.g. "Subject", "Subject.1"
  pn <- lme4:::profnames(fit, signames = FALSE, useSc = TRUE)
  out <- list(); i <- 0
  for (t in seq_along(cnms)) {
    cn <- cnms[[t]]; k <- length(cn)
    for (col in seq_len(k)) for (row in col:k) {
      i <- i + 1
      out[[i]] <- list(name = sprintf(".sig%02d", i), profile_name = unname(pn[i]),
                       grp = vc_names[t], grouping_factor = names(cnms)[t],
                       var1 = cn[row], var2 = if (row == col) NULL else cn[col],
                       scale = if (row == col) "sd" else "cor")
    }
  }
  out[[i + 1]] <- list(name = ".sigma", profile_name = unname(pn[i + 1]),
                       grp = "Residual", grouping_factor = NULL, var1 = NULL,
                       var2 = NULL, scale = "sd")
  out
}

ci_rows <- function(ci) {
  setNames(lapply(seq_len(nrow(ci)), function(i) {
    list(lower = unname(ci[i, 1]), upper = unname(ci[i, 2]))
  }), rownames(ci))
}

## ---------------------------------------------------------------------------
## Exact profile endpoints by root-finding (ML deviance, as lme4 profiles)
## ---------------------------------------------------------------------------

exact_profile_ci <- function(fit_ml, dat, levels) {
  stopifnot(!isREML(fit_ml))
  dd <- lme4:::devfun2(fit_ml, useSc = TRUE, signames = TRUE)
  opt <- attr(dd, "optimum")
  base <- attr(dd, "basedev")
  fe <- fixef(fit_ml)
  np <- length(opt) - length(fe)
  hat_sig <- opt[seq_len(np)]
  # correlations (scale "cor") live in [-1, 1], SDs in [0, Inf)
  is_cor <- vapply(sig_map(fit_ml), function(e) e$scale, "") == "cor"

  # profiled deviance with variance parameter j fixed at v
  pd_sig <- function(j, v) {
    others <- setdiff(seq_len(np), j)
    start <- hat_sig[others]
    f <- function(x) { p <- hat_sig; p[j] <- v; p[others] <- x; dd(p) }
    if (length(others) == 1) {
      scale <- max(start, 0.1 * max(hat_sig))
      lo <- if (others == np) start / 20 else if (is_cor[others]) -1 else 0  # sigma > 0, an SD >= 0
      hi <- if (is_cor[others]) 1 else scale * 20
      o <- optimize(f, c(lo, hi), tol = 1e-13 * scale)
      o$objective
    } else {
      lo <- rep(0, length(others)); lo[others == np] <- 1e-8 * start[others == np]
      lo[is_cor[others]] <- -1
      up <- ifelse(is_cor[others], 1, Inf)
      x0 <- ifelse(is_cor[others], start, pmax(start, 1e-4 * max(start)))
      o <- minqa::bobyqa(x0, f, lower = lo, upper = up,
                         control = list(rhoend = 1e-11 * max(start), maxfun = 1e5))
      o$fval
    }
  }
  # profiled deviance with fixed effect j fixed at v: refit without column j,
  # response y - v * x_j
  X <- getME(fit_ml, "X")
  y <- getME(fit_ml, "y")
  bars <- vapply(lme4::findbars(formula(fit_ml)),
                 function(b) paste0("(", paste(deparse(b), collapse = " "), ")"), "")
  pd_fix <- function(j, v) {
    d <- dat
    d$.ystar <- y - v * X[, j]
    Xo <- X[, -j, drop = FALSE]
    cols <- character()
    for (c in seq_len(ncol(Xo))) {
      nm <- sprintf(".x%d", c); d[[nm]] <- Xo[, c]; cols <- c(cols, nm)
    }
    f <- as.formula(paste(".ystar ~ 0", paste(c(cols, bars), collapse = " + "), sep = " + "))
    # (bobyqa at rhoend = 1e-12 occasionally stops with code 3 on these
    # refits; then use nloptwrap BOBYQA with tight tolerances instead)
    m <- tryCatch(suppressMessages(lmer(f, data = d, REML = FALSE, control = lmer_ctrl)),
                  warning = function(w) {
                    suppressMessages(lmer(f, data = d, REML = FALSE,
                                          control = alt_lmer_controls$nloptwrap_bobyqa))
                  })
    -2 * as.numeric(logLik(m))
  }

  params <- c(lapply(seq_len(np), function(j) list(name = names(opt)[j], hat = hat_sig[[j]],
                                                  kind = "sig", j = j)),
              lapply(seq_along(fe), function(j) list(name = names(fe)[j], hat = fe[[j]],
                                                    kind = "fix", j = j)))
  se_fe <- sqrt(diag(as.matrix(vcov(fit_ml))))
  res <- list()
  for (lv in names(levels)) res[[lv]] <- list()
  for (par in params) {
    pd <- if (par$kind == "sig") function(v) pd_sig(par$j, v) else function(v) pd_fix(par$j, v)
    zeta <- function(v) sign(v - par$hat) * sqrt(max(0, pd(v) - base))
    cor_par <- par$kind == "sig" && is_cor[par$j]
    step <- if (par$kind == "fix") se_fe[[par$j]] else if (cor_par) (1 - abs(par$hat)) / 4 else
      max(par$hat, 0.1 * max(hat_sig)) / 2
    for (lv in names(levels)) {
      z <- qnorm((1 + levels[[lv]]) / 2)
      tol <- 1e-11 * max(1, abs(par$hat), step)
      # upper
      hi <- par$hat + step
      while (zeta(hi) < z && !(cor_par && hi >= 1)) hi <- if (cor_par) min(1, hi + 2 * step) else hi + 2 * step
      upper <- if (cor_par && zeta(hi) < z) 1 else
        uniroot(function(v) zeta(v) - z, c(par$hat, hi), tol = tol)$root
      # lower (a variance parameter stops at 0, as in lme4)
      is_sd <- par$kind == "sig" && par$j < np && !cor_par  # a random-effect SD (not sigma)
      if (is_sd && (par$hat <= 0 || zeta(0) > -z)) {
        lower <- 0
      } else if (cor_par) {
        lo <- max(-1, par$hat - step)
        while (zeta(lo) > -z && lo > -1) lo <- max(-1, lo - 2 * step)
        lower <- if (zeta(lo) > -z) -1 else uniroot(function(v) zeta(v) + z, c(lo, par$hat), tol = tol)$root
      } else {
        lo <- par$hat - step
        if (par$kind == "sig" && lo <= 0) lo <- par$hat / 2
        while (zeta(lo) > -z) lo <- if (par$kind == "sig") lo / 2 else lo - 2 * step
        lower <- uniroot(function(v) zeta(v) + z, c(lo, par$hat), tol = tol)$root
      }
      res[[lv]][[par$name]] <- list(lower = lower, upper = upper)
    }
  }
  res
}

compare_ci <- function(a, b) {
  d <- unlist(lapply(names(a), function(nm) c(a[[nm]]$lower - b[[nm]]$lower,
                                             a[[nm]]$upper - b[[nm]]$upper)))
  s <- unlist(lapply(names(a), function(nm) c(abs(a[[nm]]$lower), abs(a[[nm]]$upper))))
  list(max_abs_diff = max(abs(d)),
       max_rel_diff = max(ifelse(s > 0, abs(d) / s, 0)))
}

## ---------------------------------------------------------------------------

results <- list()
for (key in names(models)) {
  spec <- models[[key]]
  dat <- datasets[[spec$data]]
  results[[key]] <- list()
  for (reml in c(FALSE, TRUE)) {
    meth <- if (reml) "REML" else "ML"
    label <- paste(key, meth)
    message("profiling ", label)
    t0 <- proc.time()[["elapsed"]]
    fit <- fit_strict(lmer(as.formula(spec$formula), data = dat, REML = reml,
                           control = lmer_ctrl), label, singular_ok = spec$singular_ok)
    conv <- check_merMod(fit, label, singular_ok = spec$singular_ok)
    # profile() reuses the fit's optimizer control (bobyqa, rhoend = 1e-12),
    # as confint(fit) does. Some of its inner bobyqa runs end with code 3
    # ("a trust region step failed to reduce q") at that rhoend; those are
    # let through and counted (the endpoints are checked against the exact
    # root-finding below); any other warning stops the script. (Looser
    # rhoend, 1e-6..1e-10, gives identical intervals except for the boundary
    # fit dyestuff2, where it breaks the .sigma profile.)
    prof_warn <- character()
    pr <- fit_strict(
      withCallingHandlers(profile(fit, signames = TRUE),
                          warning = function(w) prof_warn <<- c(prof_warn, conditionMessage(w))),
      paste(label, "profile"), singular_ok = TRUE,
      ok_warnings = "convergence code 3 from bobyqa")
    prof <- lapply(LEVELS, function(l) ci_rows(confint(pr, level = l)))
    # confint(fit, method = "profile") is confint(profile(fit)); check once
    ci_direct <- suppressWarnings(suppressMessages(
      confint(fit, method = "profile", level = 0.95)))
    stopifnot(max(abs(ci_direct - confint(pr, level = 0.95)), na.rm = TRUE) < 1e-10)
    wald <- lapply(LEVELS, function(l) {
      ci <- confint(fit, method = "Wald", level = l)
      ci_rows(ci[names(fixef(fit)), , drop = FALSE])
    })
    s <- merMod_summary(fit)
    ent <- c(
      list(formula = spec$formula, data = paste0(spec$data, ".csv")),
      s,
      list(deviance_ML = if (reml) deviance(refitML(fit)) else deviance(fit),
           sig_map = sig_map(fit),
           profile_call = "profile(fit, signames = TRUE); confint(profile, level = level)",
           profile_warnings = if (length(prof_warn)) as.list(table(prof_warn)) else list(),
           profile_confint = prof,
           wald_confint = wald,
           convergence = conv))
    if (!reml) {
      ex <- exact_profile_ci(fit, dat, LEVELS)
      ent$profile_confint_exact <- ex
      ent$lme4_vs_exact <- lapply(names(LEVELS), function(l) compare_ci(prof[[l]], ex[[l]]))
      names(ent$lme4_vs_exact) <- names(LEVELS)
      worst <- max(sapply(ent$lme4_vs_exact, `[[`, "max_rel_diff"))
      message(sprintf("   lme4 spline vs exact endpoints: max abs %.2g, max rel %.2g",
                      max(sapply(ent$lme4_vs_exact, `[[`, "max_abs_diff")), worst))
      if (worst > 1e-2) stop(label, ": lme4 profile interval far from the exact one")
    } else {
      ml <- results[[key]]$ML$profile_confint
      ent$REML_profile_minus_ML_profile <- lapply(names(LEVELS),
                                                  function(l) compare_ci(prof[[l]], ml[[l]]))
      names(ent$REML_profile_minus_ML_profile) <- names(LEVELS)
      message(sprintf("   REML-fit profile vs ML-fit profile: max abs diff %.2g",
                      max(sapply(ent$REML_profile_minus_ML_profile, `[[`, "max_abs_diff"))))
    }
    message(sprintf("   (%.1fs; %d profile warnings allowed)", proc.time()[["elapsed"]] - t0,
                    length(prof_warn)))
    results[[key]][[meth]] <- ent
  }
}

out <- list(
  meta = r_meta("tests/data/make_profile_reference.R", extra_pkgs = c("nlme", "minqa"),
                control = lmer_ctrl_text,
                notes = "See tests/data/README.md, section 'profile_reference.json'."),
  factor_levels = lapply(datasets, factor_levels_of),
  models = results
)

write_reference_json(out, "profile_reference.json")
