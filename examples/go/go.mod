module tether.example/examples

go 1.19
