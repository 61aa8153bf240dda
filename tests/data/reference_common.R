# Helpers shared by the make_*_reference.R scripts in tests/data/ (not by
# make_lme4_reference.R, which is self-contained). Source it from the
# repository root:
#
#     source(file.path("tests", "data", "reference_common.R"))

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

out_dir <- file.path("tests", "data")
if (!dir.exists(out_dir)) {
  stop("run this script from the repository root (tests/data/ not found)")
}

# The same control as make_lme4_reference.R: bobyqa with a tiny final
# trust-region radius; a gradient check that warns (and we stop on warnings).
lmer_ctrl <- lmerControl(optimizer = "bobyqa",
                         optCtrl = list(maxfun = 1e5, rhoend = 1e-12),
                         check.conv.grad = .makeCC("warning", tol = 2e-3, relTol = NULL))
lmer_ctrl_text <- "lmerControl(optimizer='bobyqa', optCtrl=list(maxfun=1e5, rhoend=1e-12))"

SINGULAR_MSG <- "boundary (singular) fit: see help('isSingular')"

na_to_null <- function(x) if (length(x) == 0 || all(is.na(x))) NULL else x

# Stop on any warning raised while fitting (convergence, rank deficiency, ...),
# except the singular-fit message when singular_ok.
# ok_warnings: regular expressions of warnings to let through (muffled; the
# caller records them).
fit_strict <- function(expr, label, singular_ok = FALSE, ok_warnings = character()) {
  withCallingHandlers(expr,
    warning = function(w) {
      msg <- conditionMessage(w)
      if (any(vapply(ok_warnings, grepl, logical(1), x = msg))) {
        invokeRestart("muffleWarning")
      }
      stop(sprintf("%s: warning while fitting: %s", label, msg))
    },
    message = function(m) {
      msg <- trimws(conditionMessage(m))
      if (singular_ok && grepl("singular", msg)) {
        invokeRestart("muffleMessage")
      }
      stop(sprintf("%s: message while fitting: %s", label, msg))
    })
}

# Convergence checks on a merMod; returns a list for the JSON.
check_merMod <- function(fit, label, singular_ok = FALSE) {
  opt <- fit@optinfo
  if (!is.null(opt$conv$opt) && opt$conv$opt != 0) {
    stop(sprintf("%s: optimizer returned code %s: %s", label, opt$conv$opt,
                 paste(opt$message, collapse = " ")))
  }
  msgs <- opt$conv$lme4$messages
  bad <- setdiff(msgs, if (singular_ok) SINGULAR_MSG else character())
  if (length(bad)) {
    stop(sprintf("%s: convergence problems: %s", label, paste(bad, collapse = "; ")))
  }
  if (length(opt$warnings)) {
    stop(sprintf("%s: optimizer warnings: %s", label,
                 paste(unlist(opt$warnings), collapse = "; ")))
  }
  singular <- isSingular(fit, tol = 1e-4)
  if (singular && !singular_ok) stop(sprintf("%s: unexpected singular fit", label))
  grad <- opt$derivs$gradient
  list(
    optimizer        = paste(opt$optimizer, collapse = ","),
    optimizer_code   = opt$conv$opt,
    feval            = opt$feval,
    max_abs_gradient = if (is.null(grad)) NULL else max(abs(grad)),
    lme4_messages    = if (length(msgs)) as.list(msgs) else list(),
    singular         = singular
  )
}

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

# ranef(fit, condVar = TRUE) for any number of terms per grouping factor:
# {grp: {terms: [...], levels: [...], values: {term: {level: mode}},
#        condVar: {term: {level: conditional variance}},
#        postVar: {level: [[row], ...]}  (k x k conditional covariance; only
#                 for a correlated k > 1 term such as (1 + Days | Subject))}}
ranef_entries <- function(fit, condVar = TRUE) {
  re <- ranef(fit, condVar = condVar)
  out <- lapply(names(re), function(g) {
    df <- re[[g]]
    lv <- rownames(df)
    vals <- lapply(colnames(df), function(tm) setNames(as.list(df[[tm]]), lv))
    names(vals) <- colnames(df)
    ent <- list(terms = as.list(colnames(df)), levels = as.list(lv), values = vals)
    pv <- attr(df, "postVar")
    if (is.list(pv)) {
      # separate terms for one factor, e.g. (1|g) + (0+x|g): lme4 gives one
      # 1 x 1 x nlevels array per term and no cross-term covariances
      ent$condVar <- setNames(lapply(colnames(df), function(tm) {
        setNames(as.list(as.numeric(pv[[tm]][1, 1, ])), lv)
      }), colnames(df))
    } else if (!is.null(pv)) {
      k <- ncol(df)
      ent$condVar <- setNames(lapply(seq_len(k), function(r) {
        setNames(as.list(as.numeric(pv[r, r, ])), lv)
      }), colnames(df))
      if (k > 1) {
        ent$postVar <- setNames(lapply(seq_along(lv), function(j) {
          m <- matrix(pv[, , j], k, k)
          lapply(seq_len(k), function(r) as.numeric(m[r, ]))
        }), lv)
      }
    }
    ent
  })
  setNames(out, names(re))
}

# Common summary of an lmer/glmer fit.
merMod_summary <- function(fit) {
  fe <- fixef(fit)
  V <- as.matrix(vcov(fit))
  res <- list(
    nobs       = nobs(fit),
    ngrps      = as.list(ngrps(fit)),
    logLik     = as.numeric(logLik(fit)),
    fixef      = as.list(fe),
    fixef_se   = as.list(setNames(sqrt(diag(V)), names(fe))),
    fixef_vcov = lapply(seq_len(nrow(V)), function(i) as.numeric(V[i, ])),
    theta      = as.list(getME(fit, "theta")),
    varcorr    = varcorr_entries(fit)
  )
  if (isLMM(fit)) {
    res$REML <- isREML(fit)
    res$objective <- -2 * res$logLik
    res$sigma <- sigma(fit)
    res$sigma2 <- sigma(fit)^2
  }
  res
}

r_meta <- function(generator, extra_pkgs = character(), ...) {
  pk <- unique(c("lme4", "Matrix", "jsonlite", extra_pkgs))
  c(list(
    generator = generator,
    R_version = R.version.string,
    packages  = setNames(lapply(pk, function(p) as.character(packageVersion(p))), pk),
    date      = format(Sys.time(), "%Y-%m-%d %H:%M:%S %Z")
  ), list(...))
}

# Recursively check that every number is finite (NULL/NA placeholders are
# allowed only where we deliberately put null).
assert_finite <- function(x, path = "") {
  if (is.list(x)) {
    for (nm in seq_along(x)) {
      key <- if (!is.null(names(x)) && nzchar(names(x)[nm])) names(x)[nm] else nm
      assert_finite(x[[nm]], paste0(path, "/", key))
    }
  } else if (is.numeric(x)) {
    if (any(!is.finite(x))) stop("non-finite number at ", path)
  }
  invisible(TRUE)
}

write_reference_json <- function(obj, file) {
  assert_finite(obj)
  write_json(obj, file.path(out_dir, file), digits = NA, auto_unbox = TRUE,
             pretty = TRUE, null = "null", na = "null")
  message("wrote ", file.path(out_dir, file))
}

write_csv_labels <- function(df, file) {
  df[] <- lapply(df, function(col) if (is.factor(col)) as.character(col) else col)
  write.csv(df, file.path(out_dir, file), row.names = FALSE)
  message("wrote ", file.path(out_dir, file))
}

factor_levels_of <- function(df) {
  fcols <- names(df)[vapply(df, is.factor, logical(1))]
  setNames(lapply(fcols, function(cc) as.list(levels(df[[cc]]))), fcols)
}

## ---------------------------------------------------------------------------
## Optimizer sensitivity: refit with other optimizers and report how far the
## stored numbers move (max absolute and max relative difference per item).
## ---------------------------------------------------------------------------

alt_lmer_controls <- list(
  Nelder_Mead = lmerControl(optimizer = "Nelder_Mead",
                            optCtrl = list(maxfun = 1e5, FtolAbs = 1e-14, FtolRel = 1e-15,
                                           XtolRel = 1e-12)),
  nloptwrap_bobyqa = lmerControl(optimizer = "nloptwrap",
                                 optCtrl = list(algorithm = "NLOPT_LN_BOBYQA", maxeval = 1e5,
                                                xtol_abs = 1e-14, ftol_abs = 1e-15,
                                                xtol_rel = 1e-14, ftol_rel = 1e-15))
)

alt_glmer_controls <- list(
  Nelder_Mead = glmerControl(optimizer = "Nelder_Mead", tolPwrss = 1e-10,
                             optCtrl = list(maxfun = 1e5, FtolAbs = 1e-14, FtolRel = 1e-15,
                                            XtolRel = 1e-12)),
  nloptwrap_bobyqa = glmerControl(optimizer = "nloptwrap", tolPwrss = 1e-10,
                                  optCtrl = list(algorithm = "NLOPT_LN_BOBYQA", maxeval = 1e5,
                                                 xtol_abs = 1e-14, ftol_abs = 1e-15,
                                                 xtol_rel = 1e-14, ftol_rel = 1e-15))
)

compare_numbers <- function(a, b) {
  a <- unlist(a); b <- unlist(b)
  stopifnot(length(a) == length(b))
  d <- abs(a - b)
  scale <- pmax(abs(a), abs(b))
  rel <- ifelse(scale > 0, d / scale, 0)
  list(max_abs_diff = if (length(d)) max(d) else 0,
       max_rel_diff = if (length(rel)) max(rel) else 0)
}

# extract(fit) returns a named list of numeric vectors; the answer is, per
# alternative optimizer and item, the max abs / rel difference to `fit`.
# refit(control) refits the model with another control (default: update()).
refit_sensitivity <- function(fit, extract, controls = NULL, refit = NULL) {
  if (is.null(controls)) controls <- if (isGLMM(fit)) alt_glmer_controls else alt_lmer_controls
  if (is.null(refit)) refit <- function(ctl) update(fit, control = ctl)
  ref <- extract(fit)
  lapply(controls, function(ctl) {
    alt <- suppressMessages(suppressWarnings(refit(ctl)))
    got <- extract(alt)
    res <- setNames(lapply(names(ref), function(nm) compare_numbers(ref[[nm]], got[[nm]])),
                    names(ref))
    # signed: > 0 would mean the alternative optimizer found a better optimum
    if (!is.null(ref$logLik)) res$logLik_alt_minus_ref <- got$logLik - ref$logLik
    res
  })
}

# Max over optimizers of each item's differences (for printing).
summarise_sensitivity <- function(sens) {
  items <- setdiff(names(sens[[1]]), "logLik_alt_minus_ref")
  sapply(items, function(it) {
    c(abs = max(sapply(sens, function(s) s[[it]]$max_abs_diff)),
      rel = max(sapply(sens, function(s) s[[it]]$max_rel_diff)))
  })
}
