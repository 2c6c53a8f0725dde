package main
import ("encoding/json";"os";"github.com/tollgate-dev/tollgate/host/plugin/detect/internal/gitleaks")
func main(){ s,err:=gitleaks.Samples(); if err!=nil{panic(err)}; json.NewEncoder(os.Stdout).Encode(s)}
