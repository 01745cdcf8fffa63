package main

import (
	"fmt"

	"github.com/refbus/refbus/services/internal/admin"
	"github.com/refbus/refbus/services/internal/core/directory"
	"github.com/refbus/refbus/services/kinds"
)

// The demo networks of DOMAIN.md: Kazakhstan's and Kyrgyzstan's, each its
// own NATS account with its own stream, directory and registry. Each node
// hosts its organizations, offering some of its kind's services.
var networks = []demoNetwork{
	{name: "kz", settings: admin.Settings{Country: "KZ", Coordinator: "kz-social", Language: "ru", TimeZone: "Asia/Almaty"}, nodes: []demoNode{
		{"kz-health", "health", 8081, []org{
			{"kz-polyclinic-5", "Almaty polyclinic No. 5", []string{"child_health_check", "medical_rehabilitation"}},
			{"kz-perinatal-almaty", "Almaty city perinatal centre", []string{"medical_accompaniment"}},
		}},
		{"kz-education", "education", 8082, []org{
			{"kz-pmpk-almaty", "PMPK and early-intervention centre, Almaty", []string{"early_intervention_assessment"}},
			{"kz-school-12", "School No. 12, Almaty", []string{"school_transfer"}},
		}},
		{"kz-social", "social", 8083, []org{
			{"kz-fsc-almaly", "Family support centre, Almaly district", []string{"family_support", "disability_support", "benefits_and_housing"}},
			{"kz-fsc-bostandyk", "Family support centre, Bostandyk district", []string{"family_support", "housing"}},
		}},
		{"kz-ngo-zhan-saya", "ngo", 8084, []org{
			{"kz-zhan-saya", "Zhan-Saya crisis centre", []string{"crisis_shelter", "psychological_help", "legal_help"}},
		}},
		{"kz-ngo-nur", "ngo", 8085, []org{
			{"kz-nur", "Nur crisis centre, Almaty region", []string{"crisis_shelter_nur"}},
		}},
	}},
	{name: "kg", settings: admin.Settings{Country: "KG", Coordinator: "kg-social", Language: "ky", TimeZone: "Asia/Bishkek"}, nodes: []demoNode{
		{"kg-social", "social", 8091, []org{
			{"kg-mlssm", "Ministry of Labour, Social Security and Migration, Bishkek", []string{"benefits_and_housing", "housing", "family_support"}},
		}},
		{"kg-health", "health", 8092, []org{
			{"kg-fmc-bishkek", "Family medicine centre No. 1, Bishkek", []string{"medical_accompaniment", "child_health_check"}},
		}},
		{"kg-ngo-league", "ngo", 8093, []org{
			{"kg-league", "League of Child Rights Defenders", []string{"legal_help"}},
		}},
		{"kg-ngo-ene-uyu", "ngo", 8094, []org{
			{"kg-ene-uyu", "Mother's Home \"Ene üyü\"", []string{"mothers_home", "psychological_help"}},
		}},
	}},
}

type demoNetwork struct {
	name     string
	settings admin.Settings
	nodes    []demoNode
}

type demoNode struct {
	name, kind string
	port       int
	orgs       []org
}

type org struct {
	id, name string
	services []string
}

// organizations are the node's organizations as its configuration gives
// them: each with the offers of its kind it names.
func (nd demoNode) organizations() ([]directory.Organization, error) {
	offers := kinds.New(nd.kind).Offers()
	var out []directory.Organization
	for _, o := range nd.orgs {
		d := directory.Organization{ID: o.id, Name: o.name}
		for _, s := range o.services {
			found := false
			for _, of := range offers {
				if of.Name == s {
					d.Services, found = append(d.Services, of), true
				}
			}
			if !found {
				return nil, fmt.Errorf("%s: the %s kind offers no service %s", o.id, nd.kind, s)
			}
		}
		out = append(out, d)
	}
	return out, nil
}

// orgIDs are the ids of the node's organizations, as the registry holds them.
func (nd demoNode) orgIDs() []string {
	ids := make([]string, len(nd.orgs))
	for i, o := range nd.orgs {
		ids[i] = o.id
	}
	return ids
}

// nodeOf is the node that hosts organization id.
func nodeOf(id string) string {
	for _, n := range networks {
		for _, nd := range n.nodes {
			for _, o := range nd.orgs {
				if o.id == id {
					return nd.name
				}
			}
		}
	}
	return ""
}
