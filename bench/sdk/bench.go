// GetSecretValue N times with the AWS SDK for Go v2; prints each call's ms as JSON.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

func main() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	svc := secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) {
		o.BaseEndpoint = aws.String(os.Getenv("KUSTOS_ENDPOINT"))
	})
	n, _ := strconv.Atoi(os.Getenv("BENCH_CALLS"))
	if n == 0 {
		n = 100
	}
	times := []float64{}
	for i := 0; i < 10+n; i++ {
		start := time.Now()
		out, err := svc.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{
			SecretId: aws.String(os.Getenv("BENCH_SECRET_ID"))})
		if err != nil || out.SecretString == nil {
			log.Fatal(err)
		}
		if i >= 10 {
			times = append(times, float64(time.Since(start).Microseconds())/1000)
		}
	}
	blob, _ := json.Marshal(times)
	fmt.Println(string(blob))
}
