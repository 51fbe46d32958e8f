package agent

import (
	"context"
	"errors"

	"github.com/anthropics/anthropic-sdk-go/v2"
)

// BatchClient is a Client that can also use the Message Batches API.
type BatchClient interface {
	Client
	// SubmitBatch creates a batch of the requests and returns its id.
	SubmitBatch(ctx context.Context, reqs []BatchRequest) (id string, err error)
	// BatchEnded reports whether the batch has finished processing.
	BatchEnded(ctx context.Context, id string) (bool, error)
	// BatchResults calls fn for the result of every request of an ended batch.
	BatchResults(ctx context.Context, id string, fn func(BatchResult)) error
}

// BatchRequest is one request of a batch; CustomID identifies its result.
type BatchRequest struct {
	CustomID string
	Request  Request
}

// BatchResult is the result of one request of a batch.
type BatchResult struct {
	CustomID string
	// Type is "succeeded" (Response is set), "errored" (Err is an *APIError), "canceled" or
	// "expired".
	Type     string
	Response Response
	Err      error
}

// SubmitBatch implements BatchClient with Messages.Batches.New.
func (c *AnthropicClient) SubmitBatch(ctx context.Context, reqs []BatchRequest) (string, error) {
	var params anthropic.MessageBatchNewParams
	for _, r := range reqs {
		p := c.params(r.Request)
		params.Requests = append(params.Requests, anthropic.MessageBatchNewParamsRequest{
			CustomID: r.CustomID,
			Params: anthropic.MessageBatchNewParamsRequestParams{MaxTokens: p.MaxTokens, Messages: p.Messages, Model: p.Model,
				Metadata: p.Metadata, OutputConfig: p.OutputConfig, StopSequences: p.StopSequences, System: p.System},
		})
	}
	b, err := c.c.Messages.Batches.New(ctx, params)
	if err != nil {
		return "", convertSDKError(err)
	}
	if b.ID == "" {
		return "", errors.Join(ErrMalformedResponse, errors.New("batch without id"))
	}
	return b.ID, nil
}

// BatchEnded implements BatchClient with Messages.Batches.Get.
func (c *AnthropicClient) BatchEnded(ctx context.Context, id string) (bool, error) {
	b, err := c.c.Messages.Batches.Get(ctx, id, anthropic.MessageBatchGetParams{})
	if err != nil {
		return false, convertSDKError(err)
	}
	return b.ProcessingStatus == anthropic.MessageBatchProcessingStatusEnded, nil
}

// BatchResults implements BatchClient with Messages.Batches.ResultsStreaming.
func (c *AnthropicClient) BatchResults(ctx context.Context, id string, fn func(BatchResult)) error {
	s := c.c.Messages.Batches.ResultsStreaming(ctx, id, anthropic.MessageBatchResultsParams{})
	defer s.Close()
	for s.Next() {
		r := s.Current()
		res := BatchResult{CustomID: r.CustomID, Type: r.Result.Type}
		switch r.Result.Type {
		case "succeeded":
			res.Response = messageResponse(&r.Result.Message)
		case "errored":
			e := r.Result.Error
			res.Err = &APIError{Type: string(e.Error.Type), Message: e.Error.Message, RequestID: e.RequestID}
		}
		fn(res)
	}
	if err := s.Err(); err != nil {
		return convertSDKError(err)
	}
	return nil
}
