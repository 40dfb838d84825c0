# Draws docs/benchmarks.png from the TSV that bench/report writes:
#   Rscript --vanilla chart.R DATA.tsv OUT.png TITLE
# Two panels (throughput, times), one group of bars per workload, one bar per
# system, on log scales because the figures span four orders of magnitude.
args <- commandArgs(TRUE)
if (length(args) < 2) stop("usage: chart.R DATA.tsv OUT.png [TITLE]")
d <- read.delim(args[1], stringsAsFactors = FALSE, check.names = FALSE)
title <- if (length(args) >= 3) args[3] else "bucketfs bench bed"

system_order <- c("SDK ceiling", "bucketfs", "s3fs", "rclone mount")
colours <- c("SDK ceiling" = "grey70", "bucketfs" = "#1f5fa8", "s3fs" = "#e08a2c", "rclone mount" = "#5aa35a")
systems <- system_order[system_order %in% unique(d$system)]
panels <- unique(d$panel)

png(args[2], width = 1600, height = 760, res = 120)
par(mfrow = c(1, length(panels)), mar = c(9, 5, 3, 1), oma = c(0, 0, 2, 0))
for (p in panels) {
  sub <- d[d$panel == p, ]
  wl <- unique(sub$workload)
  m <- matrix(NA_real_, nrow = length(systems), ncol = length(wl), dimnames = list(systems, wl))
  for (i in seq_len(nrow(sub))) m[sub$system[i], sub$workload[i]] <- sub$value[i]
  lo <- 10^floor(log10(min(m, na.rm = TRUE)))
  hi <- 10^ceiling(log10(max(m, na.rm = TRUE)) + 0.3)
  # Bars start at the axis floor; missing bars stay empty.
  mids <- barplot(m, beside = TRUE, log = "y", ylim = c(lo, hi), col = colours[systems],
    las = 2, ylab = "", main = p, border = NA, cex.names = 0.9, yaxt = "n")
  ticks <- 10^(round(log10(lo)):round(log10(hi)))
  axis(2, at = ticks, las = 1, cex.axis = 0.85,
    labels = format(ticks, scientific = FALSE, drop0trailing = TRUE, trim = TRUE, big.mark = ","))
  ok <- !is.na(m)
  text(mids[ok], m[ok], labels = formatC(m[ok], digits = 2, format = "fg", big.mark = ","),
    pos = 3, cex = 0.55, xpd = TRUE)
  legend("topright", legend = systems, fill = colours[systems], border = NA, bty = "n", cex = 0.85)
}
mtext(title, outer = TRUE, cex = 1.1, font = 2)
invisible(dev.off())
