module kimifix.test/goclient

go 1.19
