// Frozen-feature evaluation: multinomial logistic-regression probe and k-NN.
