# Redraw with: gnuplot g1.gp (in this directory)
set terminal svg size 1200,340 noenhanced font 'sans,11'
set output 'g1-edges-homo.svg'
set multiplot layout 1,4 title 'HomoGD edge weights (from -> to), mean over seeds'
set xrange [-0.5:2.5]
set yrange [2.5:-0.5]
set size ratio 1
unset key
set xtics ('l' 0, 'v' 1, 'a' 2)
set ytics ('l' 0, 'v' 1, 'a' 2)
set xlabel 'to'
set ylabel 'from'
set cbrange [0:0.482332]
set palette defined (0 'white', 1 '#2166ac')
set title 'dmd'
plot 'g1-edges-homo.dat' index 0 using 1:2:(0.5):(0.5):3 with boxxyerror fs solid 1.0 lc palette, 'g1-edges-homo.dat' index 0 using 1:2:(sprintf('%.3f', $3)) with labels
set title 'no-decoupling'
plot 'g1-edges-homo.dat' index 1 using 1:2:(0.5):(0.5):3 with boxxyerror fs solid 1.0 lc palette, 'g1-edges-homo.dat' index 1 using 1:2:(sprintf('%.3f', $3)) with labels
set title 'fixed-edges'
plot 'g1-edges-homo.dat' index 2 using 1:2:(0.5):(0.5):3 with boxxyerror fs solid 1.0 lc palette, 'g1-edges-homo.dat' index 2 using 1:2:(sprintf('%.3f', $3)) with labels
set title 'homo-only'
plot 'g1-edges-homo.dat' index 3 using 1:2:(0.5):(0.5):3 with boxxyerror fs solid 1.0 lc palette, 'g1-edges-homo.dat' index 3 using 1:2:(sprintf('%.3f', $3)) with labels
unset multiplot
set output
reset
set terminal svg size 1200,340 noenhanced font 'sans,11'
set output 'g1-edges-hetero.svg'
set multiplot layout 1,4 title 'HeteroGD edge weights (from -> to), mean over seeds'
set xrange [-0.5:2.5]
set yrange [2.5:-0.5]
set size ratio 1
unset key
set xtics ('l' 0, 'v' 1, 'a' 2)
set ytics ('l' 0, 'v' 1, 'a' 2)
set xlabel 'to'
set ylabel 'from'
set cbrange [0:0.391484]
set palette defined (0 'white', 1 '#2166ac')
set title 'dmd'
plot 'g1-edges-hetero.dat' index 0 using 1:2:(0.5):(0.5):3 with boxxyerror fs solid 1.0 lc palette, 'g1-edges-hetero.dat' index 0 using 1:2:(sprintf('%.3f', $3)) with labels
set title 'no-decoupling'
plot 'g1-edges-hetero.dat' index 1 using 1:2:(0.5):(0.5):3 with boxxyerror fs solid 1.0 lc palette, 'g1-edges-hetero.dat' index 1 using 1:2:(sprintf('%.3f', $3)) with labels
set title 'fixed-edges'
plot 'g1-edges-hetero.dat' index 2 using 1:2:(0.5):(0.5):3 with boxxyerror fs solid 1.0 lc palette, 'g1-edges-hetero.dat' index 2 using 1:2:(sprintf('%.3f', $3)) with labels
set title 'hetero-only'
plot 'g1-edges-hetero.dat' index 3 using 1:2:(0.5):(0.5):3 with boxxyerror fs solid 1.0 lc palette, 'g1-edges-hetero.dat' index 3 using 1:2:(sprintf('%.3f', $3)) with labels
unset multiplot
set output
reset
set terminal svg size 720,420 noenhanced font 'sans,11'
set output 'g1-valid-loss.svg'
set title 'Validation loss per epoch (mean over the seeds that reached the epoch)'
set xlabel 'epoch'
set ylabel 'validation loss'
set key outside right
set grid
set xtics 1
plot 'g1-valid-loss.dat' index 0 using 1:2 with linespoints title 'dmd', 'g1-valid-loss.dat' index 1 using 1:2 with linespoints title 'no-decoupling', 'g1-valid-loss.dat' index 2 using 1:2 with linespoints title 'fixed-edges', 'g1-valid-loss.dat' index 3 using 1:2 with linespoints title 'homo-only', 'g1-valid-loss.dat' index 4 using 1:2 with linespoints title 'hetero-only', 'g1-valid-loss.dat' index 5 using 1:2 with linespoints title 'no-distill', 'g1-valid-loss.dat' index 6 using 1:2 with linespoints title 'mult'
set output
reset
set terminal svg size 1420,420 noenhanced font 'sans,11'
set output 'g1-mae-acc2.svg'
set multiplot layout 1,2 title 'Test metrics per variant (mean ± std over seeds)'
set style fill solid 0.6 border -1
set boxwidth 0.6
set xrange [-0.6:6.6]
set xtics rotate by 30 right nomirror
set bmargin 6
unset key
set grid ytics
set title 'MAE (lower is better)'
set yrange [0.48462:0.833697]
plot 'g1-mae-acc2.dat' using 1:2:3:xtic(6) with boxerrorbars
set title 'Acc-2 non0 (%) (higher is better)'
set yrange [81.954:92.7382]
plot 'g1-mae-acc2.dat' using 1:4:5:xtic(6) with boxerrorbars
unset multiplot
set output
reset
set terminal svg size 1100,440 noenhanced font 'sans,11'
set output 'g1-robustness.svg'
set multiplot layout 1,2 title 'Test metrics against the missing rate (missing:all; band = mean ± std over seeds)'
set xlabel 'missing rate'
set grid
set key outside bottom center horizontal
set xrange [0:1]
set title 'Acc-2 non0 (%) (higher is better)'
set yrange [65.8541:94.8381]
plot 'g1-robustness.dat' index 0 using 1:3:4 with filledcurves fs transparent solid 0.2 noborder lc 1 notitle, 'g1-robustness.dat' index 0 using 1:2 with linespoints lc 1 title 'dmd', 'g1-robustness.dat' index 1 using 1:3:4 with filledcurves fs transparent solid 0.2 noborder lc 2 notitle, 'g1-robustness.dat' index 1 using 1:2 with linespoints lc 2 title 'no-decoupling', 'g1-robustness.dat' index 2 using 1:3:4 with filledcurves fs transparent solid 0.2 noborder lc 3 notitle, 'g1-robustness.dat' index 2 using 1:2 with linespoints lc 3 title 'fixed-edges', 'g1-robustness.dat' index 3 using 1:3:4 with filledcurves fs transparent solid 0.2 noborder lc 4 notitle, 'g1-robustness.dat' index 3 using 1:2 with linespoints lc 4 title 'homo-only', 'g1-robustness.dat' index 4 using 1:3:4 with filledcurves fs transparent solid 0.2 noborder lc 5 notitle, 'g1-robustness.dat' index 4 using 1:2 with linespoints lc 5 title 'hetero-only', 'g1-robustness.dat' index 5 using 1:3:4 with filledcurves fs transparent solid 0.2 noborder lc 6 notitle, 'g1-robustness.dat' index 5 using 1:2 with linespoints lc 6 title 'no-distill', 'g1-robustness.dat' index 6 using 1:3:4 with filledcurves fs transparent solid 0.2 noborder lc 7 notitle, 'g1-robustness.dat' index 6 using 1:2 with linespoints lc 7 title 'mult'
set title 'MAE (lower is better)'
set yrange [0.446798:1.12367]
plot 'g1-robustness.dat' index 0 using 1:6:7 with filledcurves fs transparent solid 0.2 noborder lc 1 notitle, 'g1-robustness.dat' index 0 using 1:5 with linespoints lc 1 title 'dmd', 'g1-robustness.dat' index 1 using 1:6:7 with filledcurves fs transparent solid 0.2 noborder lc 2 notitle, 'g1-robustness.dat' index 1 using 1:5 with linespoints lc 2 title 'no-decoupling', 'g1-robustness.dat' index 2 using 1:6:7 with filledcurves fs transparent solid 0.2 noborder lc 3 notitle, 'g1-robustness.dat' index 2 using 1:5 with linespoints lc 3 title 'fixed-edges', 'g1-robustness.dat' index 3 using 1:6:7 with filledcurves fs transparent solid 0.2 noborder lc 4 notitle, 'g1-robustness.dat' index 3 using 1:5 with linespoints lc 4 title 'homo-only', 'g1-robustness.dat' index 4 using 1:6:7 with filledcurves fs transparent solid 0.2 noborder lc 5 notitle, 'g1-robustness.dat' index 4 using 1:5 with linespoints lc 5 title 'hetero-only', 'g1-robustness.dat' index 5 using 1:6:7 with filledcurves fs transparent solid 0.2 noborder lc 6 notitle, 'g1-robustness.dat' index 5 using 1:5 with linespoints lc 6 title 'no-distill', 'g1-robustness.dat' index 6 using 1:6:7 with filledcurves fs transparent solid 0.2 noborder lc 7 notitle, 'g1-robustness.dat' index 6 using 1:5 with linespoints lc 7 title 'mult'
unset multiplot
set output
reset
